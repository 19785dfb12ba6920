#include "render.h"

#include <algorithm>
#include <cmath>
#include <sstream>

namespace idlepool::ctl {
namespace {

std::string yes_no(bool b) { return b ? "yes" : "no"; }

template <class T>
std::string number_or_dash(const std::optional<T>& v) {
  return v ? std::to_string(*v) : "-";
}

// A table with columns sized to their contents; the last column is not padded.
std::string table(const std::vector<std::string>& header, const std::vector<std::vector<std::string>>& rows,
                  bool legend) {
  std::vector<size_t> width(header.size(), 0);
  auto measure = [&](const std::vector<std::string>& r) {
    for (size_t i = 0; i < r.size(); ++i) width[i] = std::max(width[i], r[i].size());
  };
  if (legend) measure(header);
  for (const auto& r : rows) measure(r);
  std::ostringstream o;
  auto line = [&](const std::vector<std::string>& r) {
    std::string s;
    for (size_t i = 0; i < r.size(); ++i) {
      s += r[i];
      if (i + 1 < r.size()) s += std::string(width[i] - r[i].size() + 2, ' ');
    }
    while (!s.empty() && s.back() == ' ') s.pop_back();
    o << s << "\n";
  };
  if (legend) line(header);
  for (const auto& r : rows) line(r);
  return o.str();
}

std::optional<double> idle_seconds(const status::Pool& p, MonoTime now) {
  if (!p.last_activity) return std::nullopt;
  return to_seconds(now - *p.last_activity);
}

std::optional<double> stops_in(const status::Pool& p, MonoTime now) {
  if (p.decision.kind == Decision::Kind::kStop) return 0.0;
  if (p.decision.stop_planned()) return std::max(0.0, to_seconds(*p.decision.at - now));
  return std::nullopt;
}

// Why it does not stop, when that is not simply "not idle long enough yet".
std::string note(const status::Pool& p, MonoTime now) {
  // A socket unit that failed (or was stopped) first: the site is down until someone acts.
  for (const auto& s : p.sockets)
    if (!s.listening) return s.unit + " not listening: cannot wake";
  if (p.unsafe) return "unsafe: " + *p.unsafe;
  if (p.decision.kind == Decision::Kind::kStop || p.decision.stop_planned()) return p.stop_requested ? "stopping" : "-";
  if (p.stop_requested) return "stopping";
  return describe(p.decision, now);
}

}  // namespace

std::string format_duration(std::optional<double> seconds) {
  if (!seconds) return "-";
  long s = std::lround(*seconds);
  if (s < 60) return std::to_string(s) + "s";
  if (s < 3600) return std::to_string(s / 60) + "m " + std::to_string(s % 60) + "s";
  if (s < 86400) return std::to_string(s / 3600) + "h " + std::to_string(s % 3600 / 60) + "m";
  return std::to_string(s / 86400) + "d " + std::to_string(s % 86400 / 3600) + "h";
}

std::string format_bytes(std::optional<uint64_t> bytes) {
  if (!bytes) return "-";
  double b = static_cast<double>(*bytes);
  const char* units[] = {"B", "K", "M", "G", "T"};
  int u = 0;
  while (b >= 1024 && u < 4) {
    b /= 1024;
    ++u;
  }
  std::ostringstream o;
  o.precision(b < 10 && u > 0 ? 2 : 3);
  o << b << units[u];
  return o.str();
}

std::string render_status(const status::Model& m, const RenderOptions& options) {
  std::vector<std::vector<std::string>> rows;
  for (const auto& p : m.pools) {
    rows.push_back({p.unit, p.active_state, p.processes ? std::to_string(p.processes->processes) : "-",
                    std::to_string(p.active()), std::to_string(p.accepts()), number_or_dash(p.requests()),
                    format_duration(idle_seconds(p, m.now)), format_duration(stops_in(p, m.now)), note(p, m.now)});
  }
  std::string out = table({"POOL", "STATE", "PROCS", "ACTIVE", "ACCEPTS", "REQUESTS", "IDLE", "STOPS-IN", "NOTE"}, rows,
                          options.legend);
  if (options.legend) {
    out += "\n" + std::to_string(rows.size()) + " pools listed. " + m.summary + "\n";
    if (m.daemon.discovering)
      out += "Discovering: " + std::to_string(m.daemon.discovery_done) + " of " +
             std::to_string(m.daemon.discovery_total) + " units read.\n";
  }
  return out;
}

std::string render_show(const status::Pool& p, MonoTime now) {
  std::ostringstream o;
  auto row = [&](const std::string& key, const std::string& value) {
    o << std::string(22 - std::min<size_t>(22, key.size()), ' ') << key << ": " << value << "\n";
  };
  row("Pool", p.unit + " (" + p.kind + ")");
  row("State", p.active_state + " (" + p.sub_state + ")");
  if (p.processes) {
    row("Processes", std::to_string(p.processes->processes) + " (" + std::to_string(p.processes->workers) +
                         " workers, main pid " + (p.processes->main_pid ? std::to_string(p.processes->main_pid) : "-") +
                         ")");
  } else {
    row("Processes", "-");
  }
  for (const auto& s : p.sockets) {
    std::string counters = "not watched by the probe";
    if (s.counters)
      counters = "accepts " + std::to_string(s.counters->accepts) + ", requests " +
                 number_or_dash(s.counters->requests) + ", active " + std::to_string(s.counters->active) +
                 ", backlog " + std::to_string(s.counters->backlog) +
                 (s.counters->idle ? ", " + std::to_string(s.counters->idle) + " idle kept-alive" : "");
    row("Socket", s.address + " (" + s.unit + ", " + (s.listening ? "listening" : "not listening") + "): " + counters);
  }
  row("Idle for", format_duration(idle_seconds(p, now)));
  row("Idle timeout", p.policy.adaptive.on ? std::string("adaptive")
                                           : format_duration(static_cast<double>(p.policy.idle_timeout.count())));
  row("Idle window", describe(p.window));
  if (p.policy.adaptive.on && p.policy.adaptive.prewarm) {
    std::string prewarms = std::to_string(p.prewarms) + ", " + std::to_string(p.prewarm_hits) + " met their request";
    if (p.prewarm_at) prewarms += "; next in " + format_duration(std::max(0.0, to_seconds(*p.prewarm_at - now)));
    if (!p.visit_periods.empty()) {
      prewarms += "; periods between visits:";
      for (auto s : p.visit_periods) prewarms += " " + std::to_string(s);
      prewarms += "s";
    }
    row("Pre-warms", prewarms);
  }
  row("Min uptime", format_duration(static_cast<double>(p.policy.min_uptime.count())));
  row("Kept-alive", std::string(to_string(p.policy.kept_alive)) +
                        (p.policy.kept_alive == KeptAlive::kWait
                             ? " (idle kept-alive connections hold the stop until the client closes them)"
                             : " (a stop closes idle kept-alive connections)"));
  row("Decision", std::string(to_string(p.decision.kind)) + " (" + std::string(to_string(p.decision.rule)) +
                      "): " + describe(p.decision, now));
  row("Stops in", format_duration(stops_in(p, now)));
  row("Pinned", yes_no(p.policy.pinned));
  row("Can wake", yes_no(p.can_wake));
  row("Unsafe", p.unsafe ? *p.unsafe : "-");
  for (const auto& w : p.warnings) row("Warning", w);
  std::string stops = std::to_string(p.stops_total());
  for (auto c : status::kStopCauses)
    if (auto n = p.stops[static_cast<size_t>(c)])
      stops += ", " + std::string(status::to_string(c)) + " " + std::to_string(n);
  row("Stops", stops);
  row("Wakes", std::to_string(p.wakes));
  std::string stalls;
  for (auto a : status::kStallActions)
    if (auto n = p.stalls[static_cast<size_t>(a)])
      stalls += (stalls.empty() ? "" : ", ") + std::string(status::to_string(a)) + " " + std::to_string(n);
  if (!stalls.empty()) row("Stalls", stalls);
  auto seconds = [](double v) {
    std::ostringstream o;
    o.precision(3);
    o << v << "s";
    return o.str();
  };
  auto mean = [&seconds](const status::LatencyHistogram& h) {
    return "mean " + seconds(h.sum / static_cast<double>(h.count)) + " over " + std::to_string(h.count) + " wakes";
  };
  if (p.wake_latency.count > 0) row("Wake latency", mean(p.wake_latency) + " (its start to its first accept)");
  if (p.visitor_wake.count > 0)
    row("Visitor's wake", mean(p.visitor_wake) + ", slowest in the last hour " +
                              (p.slowest_visitor_wake ? seconds(*p.slowest_visitor_wake) : std::string("-")) +
                              " (arrival to first response)");
  row("Memory", format_bytes(p.memory_bytes));
  row("Memory released", format_bytes(p.memory_released_bytes));
  return o.str();
}

std::string render_list(const std::vector<std::string>& pools, const RenderOptions& options) {
  std::vector<std::vector<std::string>> rows;
  rows.reserve(pools.size());
  for (const auto& p : pools) rows.push_back({p});
  std::string out = table({"POOL"}, rows, options.legend);
  if (options.legend) out += "\n" + std::to_string(rows.size()) + " pools listed.\n";
  return out;
}

std::string render_check(const std::vector<status::Audit>& audits, const RenderOptions& options) {
  std::vector<std::vector<std::string>> rows;
  size_t unsafe = 0;
  for (const auto& a : audits) {
    if (!a.ok()) ++unsafe;
    std::string notes;
    for (const auto& x : a.problems) notes += (notes.empty() ? "" : "; ") + x;
    for (const auto& x : a.warnings) notes += (notes.empty() ? "warning: " : "; warning: ") + x;
    rows.push_back({a.unit, a.ok() ? "safe" : "UNSAFE", notes.empty() ? "-" : notes});
  }
  std::string out = table({"POOL", "STOP", "WHY"}, rows, options.legend);
  if (options.legend)
    out += "\n" + std::to_string(rows.size()) + " pools checked, " + std::to_string(unsafe) + " unsafe.\n";
  return out;
}

}  // namespace idlepool::ctl
