// idlepoold's configuration as plain data, and its validation. Reading it (INI file and command line, through
// Boost.Program_options) is src/daemon/options.cpp; this part is pure so that every rule is unit-tested.
#pragma once

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "idlepool/core/policy.h"
#include "idlepool/result.h"

namespace idlepool {

// Per-pool settings from a [pool UNIT] section; unset ones fall back to the global ones.
struct PoolOverrides {
  std::optional<std::chrono::seconds> idle_timeout;
  std::optional<bool> adaptive;  // idle-timeout = adaptive (true), or a duration (false)
  std::optional<std::chrono::seconds> adaptive_min, adaptive_max;
  std::optional<bool> prewarm;
  std::optional<std::chrono::seconds> min_uptime;
  std::optional<std::chrono::seconds> stall_timeout;
  std::optional<bool> pin;
  std::optional<bool> allow_abrupt_stop;
  std::optional<KeptAlive> kept_alive;
};

enum class StopMethod { kBus, kSystemctl };

struct DaemonConfig {
  PoolPolicy defaults;
  // Units to manage: glob patterns (systemd's ListUnitsByPatterns) and explicit names.
  std::vector<std::string> unit_patterns{"idlepool-php*-fpm@*.service", "php*-fpm@*.service", "php*-fpm.service"};
  std::vector<std::string> units;
  std::map<std::string, PoolOverrides> pools;
  StopMethod stop_method = StopMethod::kBus;
  double max_stops_per_second = 2.0;
  double stop_burst = 4.0;
  bool dry_run = false;
  // Pools pre-warmed (started before a predicted request, core/rhythm.h) at once, at most.
  uint32_t max_prewarming = 4;
  // The learnt rhythms (wire/rhythm_state.h); empty: none kept across restarts.
  std::string state_file = "/var/lib/idlepool/rhythm.json";
  std::string log_level = "info";
  std::string probe_tier = "auto";
  // Pools named on the command line with --pin (kept apart from [pool] sections so a reload keeps them).
  std::vector<std::string> pinned;
  // idlepoolctl's socket; root only, unless a group is named.
  std::string control_socket = "/run/idlepool/control.sock";
  std::string control_group;
  // Prometheus metrics: host:port, or "off". 9100-9999 are all allocated in Prometheus' port list; 10071 is not.
  std::string metrics_listen = "127.0.0.1:10071";
  // A file holding the bearer token scrapes must carry (root's, not world-readable); empty: none asked for.
  std::string metrics_token_file;

  // Stop pools even when their stop may cut requests in flight (php-fpm stopped with SIGTERM, or with
  // process_control_timeout = 0): never by default.
  bool allow_abrupt_stop = false;

  PoolPolicy policy_for(const std::string& unit) const;
  bool allow_abrupt_stop_for(const std::string& unit) const;
};

// "300", "300s", "5m", "1h", "1d" -> seconds. Errors say what is wrong.
Result<std::chrono::seconds> parse_duration(std::string_view text);

// Checks values that parse but make no sense together; the messages name the setting.
Result<void> validate(const DaemonConfig& config);

// Whether `unit` matches a systemd unit glob (*, ?, [...]), as ListUnitsByPatterns matches.
bool unit_matches(std::string_view pattern, std::string_view unit);

}  // namespace idlepool
