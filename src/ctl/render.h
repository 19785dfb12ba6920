// idlepoolctl's text output, rendered from the typed status model (core/status.h) that idlepoold's JSON decodes into
// (wire/status_json.h); --json prints that JSON itself. Pure.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "idlepool/core/status.h"

namespace idlepool::ctl {

struct RenderOptions {
  bool legend = true;  // header line and footer
};

std::string render_status(const status::Model& model, const RenderOptions& options);
std::string render_show(const status::Pool& pool, MonoTime now);
std::string render_list(const std::vector<std::string>& pools, const RenderOptions& options);
std::string render_check(const std::vector<status::Audit>& audits, const RenderOptions& options);

// "4m 10s", "12s", "1h 2m", "-" for none.
std::string format_duration(std::optional<double> seconds);
// "16M", "2.5K", "-" for none.
std::string format_bytes(std::optional<uint64_t> bytes);

}  // namespace idlepool::ctl
