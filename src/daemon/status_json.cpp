#include "status_json.h"

namespace idlepool::daemon {
namespace {

double seconds(MonoTime d) { return std::chrono::duration<double>(d).count(); }

nlohmann::json optional_number(const std::optional<uint64_t>& v) { return v ? nlohmann::json(*v) : nlohmann::json(); }

}  // namespace

nlohmann::json to_json(const PoolStatus& p, MonoTime now) {
  uint64_t accepts = 0, requests = 0;
  uint32_t active = 0, backlog = 0;
  bool requests_known = !p.sockets.empty();
  nlohmann::json sockets = nlohmann::json::array();
  for (const auto& s : p.sockets) {
    nlohmann::json j = {{"unit", s.unit}, {"address", s.address.to_string()}, {"listening", s.listening}};
    if (s.counters) {
      const auto& c = *s.counters;
      j["accepts"] = c.accepts;
      j["requests"] = c.requests ? nlohmann::json(*c.requests) : nlohmann::json();
      j["active"] = c.active;
      j["backlog"] = c.backlog;
      accepts += c.accepts;
      active += c.active;
      backlog += c.backlog;
      if (c.requests) {
        requests += *c.requests;
      } else {
        requests_known = false;
      }
    } else {
      requests_known = false;
    }
    sockets.push_back(std::move(j));
  }
  nlohmann::json stops = nlohmann::json::object();
  uint64_t stops_total = 0;
  for (const auto& [reason, n] : p.stops_by_reason) {
    stops[reason] = n;
    stops_total += n;
  }
  std::optional<double> stops_in;
  bool waiting_for_idle = p.decision.kind == Decision::Kind::kWait && p.decision.at &&
                          (p.decision.reason.rfind("idle for", 0) == 0 || p.decision.reason.rfind("up for", 0) == 0);
  if (waiting_for_idle) stops_in = std::max(0.0, seconds(*p.decision.at - now));
  if (p.decision.kind == Decision::Kind::kStop) stops_in = 0.0;
  std::string reason;
  if (p.decision.kind != Decision::Kind::kStop && !waiting_for_idle) reason = p.decision.reason;
  return {
      {"pool", p.unit},
      {"state", p.active_state},
      {"sub_state", p.sub_state},
      {"running", p.running},
      {"processes", p.processes ? nlohmann::json(p.processes->processes) : nlohmann::json()},
      {"workers", p.processes ? nlohmann::json(p.processes->workers) : nlohmann::json()},
      {"main_pid", p.processes && p.processes->main_pid ? nlohmann::json(p.processes->main_pid) : nlohmann::json()},
      {"active", active},
      {"backlog", backlog},
      {"accepts", accepts},
      {"requests", requests_known ? nlohmann::json(requests) : nlohmann::json()},
      {"idle_seconds", p.last_activity ? nlohmann::json(seconds(now - *p.last_activity)) : nlohmann::json()},
      {"decision", to_string(p.decision.kind)},
      {"decision_reason", p.decision.reason},
      {"stops_in_seconds", stops_in ? nlohmann::json(*stops_in) : nlohmann::json()},
      {"not_stopping_because", reason.empty() ? nlohmann::json() : nlohmann::json(reason)},
      {"pinned", p.pinned},
      {"can_wake", p.can_wake},
      {"unsafe", p.unsafe ? nlohmann::json(*p.unsafe) : nlohmann::json()},
      {"warnings", p.warnings},
      {"idle_timeout_seconds", p.policy.idle_timeout.count()},
      {"min_uptime_seconds", p.policy.min_uptime.count()},
      {"stall_timeout_seconds", p.policy.stall_timeout.count()},
      {"stops", stops},
      {"stops_total", stops_total},
      {"wakes", p.wakes},
      {"stalls", p.stalls_by_action},
      {"wake_latency", {{"count", p.wake_latency.count}, {"sum_seconds", p.wake_latency.sum}}},
      {"memory_bytes", optional_number(p.memory_bytes)},
      {"memory_released_bytes", p.memory_released_bytes},
      {"stop_requested", p.stop_requested},
      {"sockets", sockets},
  };
}

nlohmann::json to_json(const PoolAudit& a) {
  return {{"pool", a.unit}, {"ok", a.problems.empty()}, {"problems", a.problems}, {"warnings", a.warnings}};
}

}  // namespace idlepool::daemon
