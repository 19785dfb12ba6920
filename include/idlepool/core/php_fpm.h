// php-fpm's own configuration, read for stop safety. What bites (../shared/ENVIRONMENT.md): php-fpm unlinks the unix
// socket paths it listens on when the master exits, inherited ones included, so a pool whose `listen` is its socket
// unit's own path can never wake again after a stop; php-fpm treats SIGTERM as "terminate now", and escalates a
// graceful SIGQUIT to SIGTERM after process_control_timeout, which defaults to 0.
//
// Pure: parsing takes the text of one file; following `include =` globs is the caller's (src/sys).
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "idlepool/result.h"

namespace idlepool {

struct PhpFpmPoolListen {
  std::string pool;    // section name
  std::string listen;  // with $pool expanded
  std::string pm;      // process manager: static, dynamic or ondemand ("" when the file does not say)
};

struct PhpFpmConfig {
  std::vector<PhpFpmPoolListen> pools;
  std::optional<int> process_control_timeout_s;  // [global]; unset means php-fpm's default, 0
  std::vector<std::string> includes;             // `include =` patterns, in order
};

// Parses one php-fpm configuration file (INI: [global] and pool sections, ; and # comments, optional quotes,
// $pool in values). Errors name the file and line.
Result<PhpFpmConfig> parse_php_fpm_config(std::string_view text, const std::string& file_name);
// Adds what an included file says to `into` (pools, and a later process_control_timeout).
void merge_php_fpm_config(PhpFpmConfig& into, const PhpFpmConfig& included);

// A time as php-fpm writes them: "10", "10s", "5m", "1h", "1d". Seconds, or an error.
Result<int> parse_php_fpm_seconds(std::string_view text);

// What a socket-activated php-fpm service's setup means for stopping it.
struct StopSafetyInput {
  std::vector<std::string> socket_unix_paths;  // ListenStream= unix paths of its .socket units (canonical)
  std::optional<PhpFpmConfig> fpm;             // its php-fpm configuration, when it could be read
  std::string fpm_config_problem;              // why not, when it could not
  int kill_signal = 15;                        // the service's KillSignal=
};

struct StopSafety {
  std::optional<std::string> unsafe;  // never stop it: why
  std::vector<std::string> warnings;  // stopping works, but not gracefully: why
};

StopSafety assess_php_fpm(const StopSafetyInput& in);

}  // namespace idlepool
