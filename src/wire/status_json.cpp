#include "idlepool/wire/status_json.h"

#include <algorithm>

namespace idlepool::wire {
namespace {

using nlohmann::json;

// JSON has one number type: a non-negative integer may have been written signed.
bool is_count(const json& v) { return v.is_number_unsigned() || (v.is_number_integer() && v.get<int64_t>() >= 0); }

json optional_number(const std::optional<uint64_t>& v) { return v ? json(*v) : json(); }
json optional_ns(const std::optional<MonoTime>& t) { return t ? json(t->count()) : json(); }

// A reader that names the first field it rejects ("pools[2].sockets[0].accepts: not an unsigned integer").
class Reader {
 public:
  Reader(const json& j, std::string where) : j_(j), where_(std::move(where)) {}

  bool ok() const { return !error_; }
  const Error& error() const { return *error_; }
  const std::string& where() const { return where_; }

  const json* find(const char* key) {
    if (!j_.is_object()) {
      fail(where_, "not an object");
      return nullptr;
    }
    auto it = j_.find(key);
    return it == j_.end() ? nullptr : &*it;
  }
  const json* need(const char* key) {
    const json* v = find(key);
    if (!v && ok()) fail(path(key), "missing");
    return v;
  }
  std::string path(const char* key) const { return where_.empty() ? key : where_ + "." + key; }

  void str(const char* key, std::string& out) {
    const json* v = need(key);
    if (!v) return;
    if (!v->is_string()) return fail(path(key), "not a string");
    out = v->get<std::string>();
  }
  void boolean(const char* key, bool& out) {
    const json* v = need(key);
    if (!v) return;
    if (!v->is_boolean()) return fail(path(key), "not true or false");
    out = v->get<bool>();
  }
  template <class T>
  void unsigned_number(const char* key, T& out) {
    const json* v = need(key);
    if (!v) return;
    if (!is_count(*v) || v->get<uint64_t>() > std::numeric_limits<T>::max())
      return fail(path(key), "not an unsigned integer in range");
    out = static_cast<T>(v->get<uint64_t>());
  }
  void signed_number(const char* key, int64_t& out) {
    const json* v = need(key);
    if (!v) return;
    if (!v->is_number_integer()) return fail(path(key), "not an integer");
    out = v->get<int64_t>();
  }
  void number(const char* key, double& out) {
    const json* v = need(key);
    if (!v) return;
    if (!v->is_number()) return fail(path(key), "not a number");
    out = v->get<double>();
  }
  // null or absent -> unset
  void optional_unsigned(const char* key, std::optional<uint64_t>& out) {
    const json* v = find(key);
    out.reset();
    if (!v || v->is_null()) return;
    if (!is_count(*v)) return fail(path(key), "not an unsigned integer or null");
    out = v->get<uint64_t>();
  }
  void optional_number(const char* key, std::optional<double>& out) {
    const json* v = find(key);
    out.reset();
    if (!v || v->is_null()) return;
    if (!v->is_number()) return fail(path(key), "not a number or null");
    out = v->get<double>();
  }
  void optional_time(const char* key, std::optional<MonoTime>& out) {
    const json* v = find(key);
    out.reset();
    if (!v || v->is_null()) return;
    if (!v->is_number_integer()) return fail(path(key), "not an integer or null");
    out = MonoTime{v->get<int64_t>()};
  }
  void optional_string(const char* key, std::optional<std::string>& out) {
    const json* v = find(key);
    out.reset();
    if (!v || v->is_null()) return;
    if (!v->is_string()) return fail(path(key), "not a string or null");
    out = v->get<std::string>();
  }
  void strings(const char* key, std::vector<std::string>& out) {
    const json* v = need(key);
    if (!v) return;
    if (!v->is_array()) return fail(path(key), "not an array");
    for (const auto& s : *v) {
      if (!s.is_string()) return fail(path(key), "holds something that is not a string");
      out.push_back(s.get<std::string>());
    }
  }
  void fail(const std::string& where, const std::string& what) {
    if (!error_) error_ = Error{"status: " + where + ": " + what, EBADMSG};
  }
  void take(const Reader& inner) {
    if (!inner.ok() && !error_) error_ = inner.error();
  }

 private:
  const json& j_;
  std::string where_;
  std::optional<Error> error_;
};

json socket_to_json(const status::Socket& s) {
  json j = {{"unit", s.unit}, {"address", s.address}, {"listening", s.listening}};
  if (s.counters) {
    j["accepts"] = s.counters->accepts;
    j["requests"] = optional_number(s.counters->requests);
    j["active"] = s.counters->active;
    j["backlog"] = s.counters->backlog;
    j["idle"] = s.counters->idle;
  }
  return j;
}

status::Socket socket_from_json(Reader& r) {
  status::Socket s;
  r.str("unit", s.unit);
  r.str("address", s.address);
  r.boolean("listening", s.listening);
  if (r.find("accepts")) {
    status::SocketCounters c;
    r.unsigned_number("accepts", c.accepts);
    r.optional_unsigned("requests", c.requests);
    r.unsigned_number("active", c.active);
    r.unsigned_number("backlog", c.backlog);
    r.unsigned_number("idle", c.idle);
    s.counters = c;
  }
  return s;
}

template <class Enum, size_t N>
json counts_to_json(const std::array<uint64_t, N>& counts, const Enum (&names)[N]) {
  json j = json::object();
  for (size_t i = 0; i < N; ++i) j[std::string(to_string(names[i]))] = counts[i];
  return j;
}

template <size_t N, class Parse>
void counts_from_json(Reader& r, const char* key, std::array<uint64_t, N>& out, Parse parse) {
  const json* v = r.need(key);
  if (!v) return;
  if (!v->is_object()) return r.fail(r.path(key), "not an object");
  for (const auto& [name, n] : v->items()) {
    auto which = parse(name);
    if (!which) return r.fail(r.path(key), "unknown key '" + name.substr(0, 64) + "'");
    if (!is_count(n)) return r.fail(r.path(key) + "." + name, "not an unsigned integer");
    out[static_cast<size_t>(*which)] = n.template get<uint64_t>();
  }
}

json decision_reason_or_null(const status::Pool& p, MonoTime now) {
  if (p.decision.kind == Decision::Kind::kStop || p.decision.stop_planned()) return json();
  return describe(p.decision, now);
}

json latency_to_json(const status::LatencyHistogram& h) {
  return {{"count", h.count}, {"sum_seconds", h.sum}, {"buckets", h.buckets}};
}

void latency_from_json(Reader& r, const char* key, status::LatencyHistogram& h) {
  const json* j = r.need(key);
  if (!j) return;
  Reader w(*j, r.path(key));
  w.unsigned_number("count", h.count);
  w.number("sum_seconds", h.sum);
  if (const json* b = w.need("buckets")) {
    if (!b->is_array() || b->size() != status::kWakeLatencyBucketCount) {
      w.fail(w.path("buckets"), "not an array of " + std::to_string(status::kWakeLatencyBucketCount) + " counts");
    } else {
      for (size_t i = 0; i < b->size(); ++i) {
        if (!is_count((*b)[i])) {
          w.fail(w.path("buckets"), "holds something that is not a count");
          break;
        }
        h.buckets[i] = (*b)[i].get<uint64_t>();
      }
    }
  }
  r.take(w);
}

}  // namespace

json pool_to_json(const status::Pool& p, MonoTime now) {
  json sockets = json::array();
  for (const auto& s : p.sockets) sockets.push_back(socket_to_json(s));
  std::optional<double> stops_in;
  if (p.decision.stop_planned()) stops_in = std::max(0.0, to_seconds(*p.decision.at - now));
  if (p.decision.kind == Decision::Kind::kStop) stops_in = 0.0;
  const Decision& d = p.decision;
  auto optional_seconds = [](const std::optional<std::chrono::seconds>& s) { return s ? json(s->count()) : json(); };
  json window = {{"seconds", p.window.value.count()},
                 {"reason", std::string(to_string(p.window.reason))},
                 {"samples", p.window.samples},
                 {"p50_seconds", optional_seconds(p.window.p50)},
                 {"p90_seconds", optional_seconds(p.window.p90)},
                 {"p99_seconds", optional_seconds(p.window.p99)},
                 {"cold_share", p.window.cold_share}};
  return {
      {"version", status::kVersion},
      {"now_ns", now.count()},
      {"pool", p.unit},
      {"kind", p.kind},
      {"state", p.active_state},
      {"sub_state", p.sub_state},
      {"running", p.running},
      {"processes", p.processes ? json(p.processes->processes) : json()},
      {"workers", p.processes ? json(p.processes->workers) : json()},
      {"main_pid", p.processes && p.processes->main_pid ? json(p.processes->main_pid) : json()},
      {"active", p.active()},
      {"backlog", p.backlog()},
      {"idle", p.idle()},
      {"accepts", p.accepts()},
      {"requests", optional_number(p.requests())},
      {"last_activity_ns", optional_ns(p.last_activity)},
      {"idle_seconds", p.last_activity ? json(to_seconds(now - *p.last_activity)) : json()},
      {"decision", std::string(to_string(d.kind))},
      {"rule", std::string(to_string(d.rule))},
      {"decision_reason", describe(d, now)},
      {"decision_at_ns", optional_ns(d.at)},
      {"decision_since_ns", d.since.count()},
      {"decision_limit_seconds", d.limit.count()},
      {"decision_active", d.active},
      {"decision_queued", d.queued},
      {"decision_idle", d.idle},
      {"decision_detail", d.detail},
      {"stops_in_seconds", stops_in ? json(*stops_in) : json()},
      {"not_stopping_because", decision_reason_or_null(p, now)},
      {"pinned", p.policy.pinned},
      {"keepalive_connections", std::string(to_string(p.policy.kept_alive))},
      {"can_wake", p.can_wake},
      {"unsafe", p.unsafe ? json(*p.unsafe) : json()},
      {"warnings", p.warnings},
      {"idle_timeout_seconds", p.policy.idle_timeout.count()},
      {"adaptive", p.policy.adaptive.on},
      {"prewarm", p.policy.adaptive.prewarm},
      {"idle_window", window},
      {"prewarms", p.prewarms},
      {"prewarm_hits", p.prewarm_hits},
      {"visit_periods_seconds", p.visit_periods},
      {"prewarm_at_ns", optional_ns(p.prewarm_at)},
      {"min_uptime_seconds", p.policy.min_uptime.count()},
      {"stall_timeout_seconds", p.policy.stall_timeout.count()},
      {"stops", counts_to_json(p.stops, status::kStopCauses)},
      {"stops_total", p.stops_total()},
      {"wakes", p.wakes},
      {"stalls", counts_to_json(p.stalls, status::kStallActions)},
      {"wake_latency", latency_to_json(p.wake_latency)},
      {"visitor_wake", latency_to_json(p.visitor_wake)},
      {"slowest_visitor_wake_seconds", p.slowest_visitor_wake ? json(*p.slowest_visitor_wake) : json()},
      {"memory_bytes", optional_number(p.memory_bytes)},
      {"memory_released_bytes", p.memory_released_bytes},
      {"stop_requested", p.stop_requested},
      {"sockets", sockets},
  };
}

Result<status::Pool> pool_from_json(const json& j, MonoTime* now) {
  Reader r(j, j.is_object() && j.contains("pool") && j["pool"].is_string() ? j["pool"].get<std::string>() : "pool");
  status::Pool p;
  int64_t now_ns = 0;
  r.signed_number("now_ns", now_ns);
  if (now) *now = MonoTime{now_ns};
  r.str("pool", p.unit);
  r.str("kind", p.kind);
  r.str("state", p.active_state);
  r.str("sub_state", p.sub_state);
  r.boolean("running", p.running);
  std::optional<uint64_t> processes, workers, main_pid;
  r.optional_unsigned("processes", processes);
  r.optional_unsigned("workers", workers);
  r.optional_unsigned("main_pid", main_pid);
  if (processes) {
    p.processes = status::Processes{static_cast<uint32_t>(*processes), static_cast<uint32_t>(workers.value_or(0)),
                                    static_cast<int32_t>(main_pid.value_or(0))};
  }
  r.optional_time("last_activity_ns", p.last_activity);
  std::string kind, rule;
  r.str("decision", kind);
  r.str("rule", rule);
  if (r.ok()) {
    auto k = parse_decision_kind(kind);
    auto ru = parse_rule(rule);
    if (!k) r.fail(r.path("decision"), "unknown decision '" + kind.substr(0, 32) + "'");
    if (!ru) r.fail(r.path("rule"), "unknown rule '" + rule.substr(0, 32) + "'");
    if (k && ru) {
      p.decision.kind = *k;
      p.decision.rule = *ru;
    }
  }
  r.optional_time("decision_at_ns", p.decision.at);
  int64_t since = 0, limit = 0;
  r.signed_number("decision_since_ns", since);
  r.signed_number("decision_limit_seconds", limit);
  p.decision.since = MonoTime{since};
  p.decision.limit = std::chrono::seconds{limit};
  r.unsigned_number("decision_active", p.decision.active);
  r.unsigned_number("decision_queued", p.decision.queued);
  r.unsigned_number("decision_idle", p.decision.idle);
  r.str("decision_detail", p.decision.detail);
  r.boolean("pinned", p.policy.pinned);
  std::string kept_alive;
  r.str("keepalive_connections", kept_alive);
  if (r.ok()) {
    auto k = parse_kept_alive(kept_alive);
    if (!k) r.fail(r.path("keepalive_connections"), "unknown value '" + kept_alive.substr(0, 32) + "'");
    if (k) p.policy.kept_alive = *k;
  }
  r.boolean("can_wake", p.can_wake);
  r.optional_string("unsafe", p.unsafe);
  r.strings("warnings", p.warnings);
  int64_t idle = 0, uptime = 0, stall = 0;
  r.signed_number("idle_timeout_seconds", idle);
  r.signed_number("min_uptime_seconds", uptime);
  r.signed_number("stall_timeout_seconds", stall);
  p.policy.idle_timeout = std::chrono::seconds{idle};
  p.policy.min_uptime = std::chrono::seconds{uptime};
  p.policy.stall_timeout = std::chrono::seconds{stall};
  r.boolean("adaptive", p.policy.adaptive.on);
  r.boolean("prewarm", p.policy.adaptive.prewarm);
  if (const json* wj = r.need("idle_window")) {
    Reader w(*wj, r.path("idle_window"));
    int64_t value = 0;
    std::string reason;
    w.signed_number("seconds", value);
    p.window.value = std::chrono::seconds{value};
    w.str("reason", reason);
    if (w.ok()) {
      auto why = parse_window_reason(reason);
      if (!why) w.fail(w.path("reason"), "unknown reason '" + reason.substr(0, 32) + "'");
      if (why) p.window.reason = *why;
    }
    w.unsigned_number("samples", p.window.samples);
    for (auto [key, field] : {std::pair{"p50_seconds", &Window::p50}, std::pair{"p90_seconds", &Window::p90},
                              std::pair{"p99_seconds", &Window::p99}}) {
      std::optional<uint64_t> v;
      w.optional_unsigned(key, v);
      if (v) p.window.*field = std::chrono::seconds(static_cast<int64_t>(std::min<uint64_t>(*v, INT64_MAX)));
    }
    w.number("cold_share", p.window.cold_share);
    r.take(w);
  }
  r.unsigned_number("prewarms", p.prewarms);
  r.unsigned_number("prewarm_hits", p.prewarm_hits);
  if (const json* v = r.need("visit_periods_seconds")) {
    if (!v->is_array() || v->size() > kRecentGaps) {
      r.fail(r.path("visit_periods_seconds"), "not an array of at most " + std::to_string(kRecentGaps) + " seconds");
    } else {
      for (const auto& e : *v) {
        if (!is_count(e) || e.get<uint64_t>() > std::numeric_limits<uint32_t>::max()) {
          r.fail(r.path("visit_periods_seconds"), "holds something that is not seconds");
          break;
        }
        p.visit_periods.push_back(static_cast<uint32_t>(e.get<uint64_t>()));
      }
    }
  }
  r.optional_time("prewarm_at_ns", p.prewarm_at);
  counts_from_json(r, "stops", p.stops, &status::parse_stop_cause);
  r.unsigned_number("wakes", p.wakes);
  counts_from_json(r, "stalls", p.stalls, &status::parse_stall_action);
  latency_from_json(r, "wake_latency", p.wake_latency);
  latency_from_json(r, "visitor_wake", p.visitor_wake);
  r.optional_number("slowest_visitor_wake_seconds", p.slowest_visitor_wake);
  r.optional_unsigned("memory_bytes", p.memory_bytes);
  r.unsigned_number("memory_released_bytes", p.memory_released_bytes);
  r.boolean("stop_requested", p.stop_requested);
  if (const json* socks = r.need("sockets")) {
    if (!socks->is_array()) {
      r.fail(r.path("sockets"), "not an array");
    } else {
      for (size_t i = 0; i < socks->size() && r.ok(); ++i) {
        Reader s((*socks)[i], r.path("sockets") + "[" + std::to_string(i) + "]");
        p.sockets.push_back(socket_from_json(s));
        r.take(s);
      }
    }
  }
  if (!r.ok()) return r.error();
  return p;
}

json status_to_json(const status::Model& m) {
  json pools = json::array();
  for (const auto& p : m.pools) {
    json pj = pool_to_json(p, m.now);
    pj.erase("version");
    pj.erase("now_ns");
    pools.push_back(std::move(pj));
  }
  const auto& d = m.daemon;
  return {
      {"version", m.version},
      {"now_ns", m.now.count()},
      {"summary", m.summary},
      {"probe",
       {{"accepts", d.probe.accepts},
        {"requests", d.probe.requests},
        {"tcp_closes", d.probe.tcp_closes},
        {"unix_closes", d.probe.unix_closes}}},
      {"daemon",
       {{"version", d.version},
        {"bus_errors", d.bus_errors},
        {"bus_signals_dropped", d.bus_signals_dropped},
        {"deferred_rate_limit", d.deferred_rate_limit},
        {"deferred_in_flight", d.deferred_in_flight},
        {"units_read", d.units_read},
        {"discovering", d.discovering},
        {"discovery_done", d.discovery_done},
        {"discovery_total", d.discovery_total},
        {"process_events", d.processes.events},
        {"process_events_lost", d.processes.lost},
        {"process_overruns", d.processes.overruns},
        {"process_resyncs", d.processes.resyncs},
        {"process_rejected", d.processes.rejected}}},
      {"pools", pools},
  };
}

Result<status::Model> status_from_json(const json& j) {
  Reader r(j, "");
  status::Model m;
  int64_t version = 0;
  r.signed_number("version", version);
  if (r.ok() && version != status::kVersion)
    return Error{
        "status: version " + std::to_string(version) + ", this idlepoolctl reads " + std::to_string(status::kVersion),
        EPROTO};
  m.version = static_cast<int>(version);
  int64_t now = 0;
  r.signed_number("now_ns", now);
  m.now = MonoTime{now};
  r.str("summary", m.summary);
  if (const json* probe = r.need("probe")) {
    Reader p(*probe, "probe");
    p.str("accepts", m.daemon.probe.accepts);
    p.str("requests", m.daemon.probe.requests);
    p.str("tcp_closes", m.daemon.probe.tcp_closes);
    p.str("unix_closes", m.daemon.probe.unix_closes);
    r.take(p);
  }
  if (const json* daemon = r.need("daemon")) {
    Reader d(*daemon, "daemon");
    auto& x = m.daemon;
    d.str("version", x.version);
    d.unsigned_number("bus_errors", x.bus_errors);
    d.unsigned_number("bus_signals_dropped", x.bus_signals_dropped);
    d.unsigned_number("deferred_rate_limit", x.deferred_rate_limit);
    d.unsigned_number("deferred_in_flight", x.deferred_in_flight);
    d.unsigned_number("units_read", x.units_read);
    d.boolean("discovering", x.discovering);
    d.unsigned_number("discovery_done", x.discovery_done);
    d.unsigned_number("discovery_total", x.discovery_total);
    d.unsigned_number("process_events", x.processes.events);
    d.unsigned_number("process_events_lost", x.processes.lost);
    d.unsigned_number("process_overruns", x.processes.overruns);
    d.unsigned_number("process_resyncs", x.processes.resyncs);
    d.unsigned_number("process_rejected", x.processes.rejected);
    r.take(d);
  }
  if (const json* pools = r.need("pools")) {
    if (!pools->is_array()) {
      r.fail("pools", "not an array");
    } else {
      for (size_t i = 0; i < pools->size() && r.ok(); ++i) {
        json pj = (*pools)[i];
        if (pj.is_object()) {
          pj["version"] = status::kVersion;
          pj["now_ns"] = now;
        }
        auto p = pool_from_json(pj);
        if (!p) return Error{p.error().message + " (pools[" + std::to_string(i) + "])", p.error().code};
        m.pools.push_back(std::move(*p));
      }
    }
  }
  if (!r.ok()) return r.error();
  return m;
}

json audits_to_json(const std::vector<status::Audit>& audits) {
  json pools = json::array();
  bool all_ok = true;
  for (const auto& a : audits) {
    all_ok &= a.ok();
    pools.push_back({{"pool", a.unit}, {"ok", a.ok()}, {"problems", a.problems}, {"warnings", a.warnings}});
  }
  return {{"ok", all_ok}, {"pools", pools}};
}

Result<std::vector<status::Audit>> audits_from_json(const json& j) {
  Reader r(j, "");
  std::vector<status::Audit> out;
  if (const json* pools = r.need("pools")) {
    if (!pools->is_array()) {
      r.fail("pools", "not an array");
    } else {
      for (size_t i = 0; i < pools->size() && r.ok(); ++i) {
        Reader a((*pools)[i], "pools[" + std::to_string(i) + "]");
        status::Audit audit;
        a.str("pool", audit.unit);
        a.strings("problems", audit.problems);
        a.strings("warnings", audit.warnings);
        r.take(a);
        out.push_back(std::move(audit));
      }
    }
  }
  if (!r.ok()) return r.error();
  return out;
}

}  // namespace idlepool::wire
