// idlepoold's command line and configuration file (/etc/idlepool/idlepool.conf, INI read by Boost.Program_options,
// with [pool UNIT] sections). The command line wins over the file. Errors name the file and line.
#pragma once

#include <string>
#include <vector>

#include "idlepool/core/config.h"
#include "idlepool/result.h"

namespace idlepool::daemon {

inline constexpr const char* kDefaultConfigPath = "/etc/idlepool/idlepool.conf";

struct Invocation {
  DaemonConfig config;
  std::string config_path;
  bool config_file_found = false;
  bool check_config = false;
  bool help = false;
  bool version = false;
  std::string usage;           // --help's text (--help-settings: the settings table)
  std::string settings_table;  // --help-settings: NAME<TAB>ARGUMENT<TAB>DESCRIPTION per setting
};

// Parses argv and the configuration file it names (or the default one, which may be absent).
Result<Invocation> parse_invocation(const std::vector<std::string>& args);

}  // namespace idlepool::daemon
