#include "idlepool/core/config.h"

#include <fnmatch.h>

#include <charconv>

#include "idlepool/core/address.h"

namespace idlepool {

PoolPolicy DaemonConfig::policy_for(const std::string& unit) const {
  PoolPolicy p = defaults;
  auto it = pools.find(unit);
  if (it != pools.end()) {
    if (it->second.idle_timeout) p.idle_timeout = *it->second.idle_timeout;
    if (it->second.adaptive) p.adaptive.on = *it->second.adaptive;
    if (it->second.adaptive_min) p.adaptive.min = *it->second.adaptive_min;
    if (it->second.adaptive_max) p.adaptive.max = *it->second.adaptive_max;
    if (it->second.prewarm) p.adaptive.prewarm = *it->second.prewarm;
    if (it->second.min_uptime) p.min_uptime = *it->second.min_uptime;
    if (it->second.stall_timeout) p.stall_timeout = *it->second.stall_timeout;
    if (it->second.pin) p.pinned = *it->second.pin;
    if (it->second.kept_alive) p.kept_alive = *it->second.kept_alive;
  }
  for (const auto& name : pinned)
    if (name == unit) p.pinned = true;
  return p;
}

bool DaemonConfig::allow_abrupt_stop_for(const std::string& unit) const {
  auto it = pools.find(unit);
  if (it != pools.end() && it->second.allow_abrupt_stop) return *it->second.allow_abrupt_stop;
  return allow_abrupt_stop;
}

Result<std::chrono::seconds> parse_duration(std::string_view text) {
  std::string_view digits = text;
  long mult = 1;
  if (!digits.empty()) {
    switch (digits.back()) {
      case 's':
        digits.remove_suffix(1);
        break;
      case 'm':
        mult = 60;
        digits.remove_suffix(1);
        break;
      case 'h':
        mult = 3600;
        digits.remove_suffix(1);
        break;
      case 'd':
        mult = 86400;
        digits.remove_suffix(1);
        break;
      default:
        break;
    }
  }
  long v = 0;
  auto [p, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), v);
  if (digits.empty() || ec != std::errc() || p != digits.data() + digits.size() || v < 0)
    return Error{"'" + std::string(text) + "' is not a duration (N, Ns, Nm, Nh or Nd)", EINVAL};
  if (v > 365L * 86400 / mult) return Error{"'" + std::string(text) + "' is longer than a year", EINVAL};
  return std::chrono::seconds(v * mult);
}

namespace {

// The adaptive window's bounds, as the pool will have them; `where` prefixes the message ("[pool X] ").
Result<void> validate_adaptive(const AdaptiveSettings& a, const std::string& where) {
  if (a.min < std::chrono::seconds(1)) return Error{where + "adaptive-min must be at least 1s", EINVAL};
  if (a.max < a.min)
    return Error{where + "adaptive-max (" + std::to_string(a.max.count()) + "s) is shorter than adaptive-min (" +
                     std::to_string(a.min.count()) + "s)",
                 EINVAL};
  return {};
}

}  // namespace

Result<void> validate(const DaemonConfig& c) {
  if (c.defaults.idle_timeout < std::chrono::seconds(1)) return Error{"idle-timeout must be at least 1s", EINVAL};
  if (auto r = validate_adaptive(c.defaults.adaptive, ""); !r) return r;
  if (c.defaults.adaptive.min_samples < 1) return Error{"adaptive-min-samples must be at least 1", EINVAL};
  if (!c.state_file.empty() && c.state_file[0] != '/')
    return Error{"state-file '" + c.state_file + "' is not an absolute path", EINVAL};
  if (c.max_stops_per_second <= 0) return Error{"max-stops-per-second must be greater than 0", EINVAL};
  if (c.stop_burst < 1) return Error{"stop-burst must be at least 1", EINVAL};
  if (c.unit_patterns.empty() && c.units.empty())
    return Error{"nothing to manage: no unit-pattern and no unit is configured", EINVAL};
  for (const auto& [unit, o] : c.pools) {
    if (o.idle_timeout && *o.idle_timeout < std::chrono::seconds(1))
      return Error{"[pool " + unit + "] idle-timeout must be at least 1s", EINVAL};
    if (unit.find('.') == std::string::npos)
      return Error{"[pool " + unit + "] is not a unit name (expected e.g. php8.2-fpm@site.service)", EINVAL};
    if (auto r = validate_adaptive(c.policy_for(unit).adaptive, "[pool " + unit + "] "); !r) return r;
  }
  for (const auto& u : c.units)
    if (u.find('.') == std::string::npos) return Error{"unit '" + u + "' is not a unit name", EINVAL};
  static const char* kLevels[] = {"trace", "debug", "info", "warn", "error", "critical", "off"};
  bool level_ok = false;
  for (const char* l : kLevels) level_ok |= c.log_level == l;
  if (!level_ok) return Error{"log-level '" + c.log_level + "' is not one of trace, debug, info, warn, error", EINVAL};
  if (c.control_socket.empty() || c.control_socket[0] != '/')
    return Error{"control-socket '" + c.control_socket + "' is not an absolute path", EINVAL};
  if (c.metrics_listen != "off") {
    auto a = parse_socket_address(c.metrics_listen);
    if (!a || !a->is_tcp())
      return Error{"metrics-listen '" + c.metrics_listen + "' is not IP:PORT (127.0.0.1:10071, [::1]:10071) or off",
                   EINVAL};
  }
  if (!c.metrics_token_file.empty() && c.metrics_token_file[0] != '/')
    return Error{"metrics-token-file '" + c.metrics_token_file + "' is not an absolute path", EINVAL};
  if (c.probe_tier != "auto" && c.probe_tier != "fentry" && c.probe_tier != "sock" && c.probe_tier != "syscall")
    return Error{"probe-tier '" + c.probe_tier + "' is not one of auto, fentry, sock, syscall", EINVAL};
  return {};
}

bool unit_matches(std::string_view pattern, std::string_view unit) {
  return fnmatch(std::string(pattern).c_str(), std::string(unit).c_str(), 0) == 0;
}

}  // namespace idlepool
