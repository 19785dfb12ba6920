// idlepoolctl's text output, rendered from the daemon's JSON results (the same model --json prints). Pure.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

namespace idlepool::ctl {

struct RenderOptions {
  bool legend = true;  // header line and footer
};

std::string render_status(const nlohmann::json& result, const RenderOptions& options);
std::string render_show(const nlohmann::json& pool);
std::string render_list(const nlohmann::json& result, const RenderOptions& options);
std::string render_check(const nlohmann::json& result, const RenderOptions& options);

// "4m 10s", "12s", "1h 2m", "-" for null.
std::string format_duration(const nlohmann::json& seconds);
std::string format_bytes(const nlohmann::json& bytes);

}  // namespace idlepool::ctl
