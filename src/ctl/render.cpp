#include "render.h"

#include <algorithm>
#include <cmath>
#include <sstream>
#include <vector>

namespace idlepool::ctl {
namespace {

std::string str(const nlohmann::json& v) {
  if (v.is_null()) return "-";
  if (v.is_string()) return v.get<std::string>();
  if (v.is_boolean()) return v.get<bool>() ? "yes" : "no";
  if (v.is_number_float()) {
    std::ostringstream o;
    o << v.get<double>();
    return o.str();
  }
  return v.dump();
}

const nlohmann::json& field(const nlohmann::json& j, const char* name) {
  static const nlohmann::json null;
  auto it = j.find(name);
  return it == j.end() ? null : *it;
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

}  // namespace

std::string format_duration(const nlohmann::json& seconds) {
  if (!seconds.is_number()) return "-";
  long s = std::lround(seconds.get<double>());
  if (s < 60) return std::to_string(s) + "s";
  if (s < 3600) return std::to_string(s / 60) + "m " + std::to_string(s % 60) + "s";
  if (s < 86400) return std::to_string(s / 3600) + "h " + std::to_string(s % 3600 / 60) + "m";
  return std::to_string(s / 86400) + "d " + std::to_string(s % 86400 / 3600) + "h";
}

std::string format_bytes(const nlohmann::json& bytes) {
  if (!bytes.is_number()) return "-";
  double b = bytes.get<double>();
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

std::string render_status(const nlohmann::json& result, const RenderOptions& options) {
  std::vector<std::vector<std::string>> rows;
  for (const auto& p : field(result, "pools")) {
    std::string note = str(field(p, "not_stopping_because"));
    if (!field(p, "unsafe").is_null()) note = "unsafe: " + str(field(p, "unsafe"));
    if (note == "-" && field(p, "stop_requested").is_boolean() && field(p, "stop_requested").get<bool>())
      note = "stopping";
    rows.push_back({str(field(p, "pool")), str(field(p, "state")), str(field(p, "processes")), str(field(p, "active")),
                    str(field(p, "accepts")), str(field(p, "requests")), format_duration(field(p, "idle_seconds")),
                    format_duration(field(p, "stops_in_seconds")), note});
  }
  std::string out = table({"POOL", "STATE", "PROCS", "ACTIVE", "ACCEPTS", "REQUESTS", "IDLE", "STOPS-IN", "NOTE"},
                          rows, options.legend);
  if (options.legend) out += "\n" + std::to_string(rows.size()) + " pools listed. " + str(field(result, "summary")) + "\n";
  return out;
}

std::string render_show(const nlohmann::json& p) {
  std::ostringstream o;
  auto row = [&](const char* key, const std::string& value) { o << std::string(22 - std::min<size_t>(22, std::string(key).size()), ' ') << key << ": " << value << "\n"; };
  row("Pool", str(field(p, "pool")));
  row("State", str(field(p, "state")) + " (" + str(field(p, "sub_state")) + ")");
  row("Processes", str(field(p, "processes")) + " (" + str(field(p, "workers")) + " workers, main pid " +
                       str(field(p, "main_pid")) + ")");
  for (const auto& s : field(p, "sockets"))
    row("Socket", str(field(s, "address")) + " (" + str(field(s, "unit")) + ", " +
                      (field(s, "listening").is_boolean() && field(s, "listening").get<bool>() ? "listening" : "not listening") +
                      "): accepts " + str(field(s, "accepts")) + ", requests " + str(field(s, "requests")) +
                      ", active " + str(field(s, "active")) + ", backlog " + str(field(s, "backlog")));
  row("Idle for", format_duration(field(p, "idle_seconds")));
  row("Idle timeout", format_duration(field(p, "idle_timeout_seconds")));
  row("Min uptime", format_duration(field(p, "min_uptime_seconds")));
  row("Decision", str(field(p, "decision")) + ": " + str(field(p, "decision_reason")));
  row("Stops in", format_duration(field(p, "stops_in_seconds")));
  row("Pinned", str(field(p, "pinned")));
  row("Can wake", str(field(p, "can_wake")));
  row("Unsafe", str(field(p, "unsafe")));
  for (const auto& w : field(p, "warnings")) row("Warning", str(w));
  row("Stops", str(field(p, "stops_total")) + " " + field(p, "stops").dump());
  row("Wakes", str(field(p, "wakes")));
  if (field(p, "stalls").is_object() && !field(p, "stalls").empty()) row("Stalls", field(p, "stalls").dump());
  const auto& wl = field(p, "wake_latency");
  if (field(wl, "count").is_number() && field(wl, "count").get<uint64_t>() > 0)
    row("Wake latency", "mean " + std::to_string(field(wl, "sum_seconds").get<double>() /
                                                 static_cast<double>(field(wl, "count").get<uint64_t>())) +
                            "s over " + str(field(wl, "count")) + " wakes");
  row("Memory", format_bytes(field(p, "memory_bytes")));
  row("Memory released", format_bytes(field(p, "memory_released_bytes")));
  return o.str();
}

std::string render_list(const nlohmann::json& result, const RenderOptions& options) {
  std::vector<std::vector<std::string>> rows;
  for (const auto& p : field(result, "pools")) rows.push_back({str(p)});
  std::string out = table({"POOL"}, rows, options.legend);
  if (options.legend) out += "\n" + std::to_string(rows.size()) + " pools listed.\n";
  return out;
}

std::string render_check(const nlohmann::json& result, const RenderOptions& options) {
  std::vector<std::vector<std::string>> rows;
  size_t unsafe = 0;
  for (const auto& p : field(result, "pools")) {
    bool ok = field(p, "ok").is_boolean() && field(p, "ok").get<bool>();
    if (!ok) ++unsafe;
    std::string notes;
    for (const auto& x : field(p, "problems")) notes += (notes.empty() ? "" : "; ") + str(x);
    for (const auto& x : field(p, "warnings")) notes += (notes.empty() ? "warning: " : "; warning: ") + str(x);
    rows.push_back({str(field(p, "pool")), ok ? "safe" : "UNSAFE", notes.empty() ? "-" : notes});
  }
  std::string out = table({"POOL", "STOP", "WHY"}, rows, options.legend);
  if (options.legend)
    out += "\n" + std::to_string(rows.size()) + " pools checked, " + std::to_string(unsafe) + " unsafe.\n";
  return out;
}

}  // namespace idlepool::ctl
