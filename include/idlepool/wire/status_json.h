// The status model (core/status.h) as JSON, both ways: idlepoold encodes it into its control-protocol replies,
// idlepoolctl decodes it into the same typed model and renders its table from that (never from JSON keys), and
// --json prints the encoding. Pure and fuzzed: decoding checks every field's type and names the field it rejects.
//
// Beside the absolute CLOCK_MONOTONIC times (*_ns) the encoding carries derived figures for people and scripts
// (idle_seconds, stops_in_seconds, decision_reason), computed at the model's `now`.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "idlepool/core/status.h"
#include "idlepool/result.h"

namespace idlepool::wire {

// `status`: {"version":2,"now_ns":...,"summary":...,"probe":{...},"daemon":{...},"pools":[...]}
nlohmann::json status_to_json(const status::Model& model);
Result<status::Model> status_from_json(const nlohmann::json& j);

// `show`: one pool, with "version" and "now_ns" beside its fields.
nlohmann::json pool_to_json(const status::Pool& pool, MonoTime now);
Result<status::Pool> pool_from_json(const nlohmann::json& j, MonoTime* now = nullptr);

// `check`: {"ok":bool,"pools":[{"pool","ok","problems","warnings"}]}
nlohmann::json audits_to_json(const std::vector<status::Audit>& audits);
Result<std::vector<status::Audit>> audits_from_json(const nlohmann::json& j);

}  // namespace idlepool::wire
