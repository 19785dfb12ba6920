// The php-fpm kind's rules, exposed for tests and for idlepoolctl (adopt, check). What bites
// (../shared/ENVIRONMENT.md): php-fpm unlinks the unix socket paths it listens on when the master exits, inherited ones
// included, so a pool whose `listen` is a socket unit's own path can never wake again after a stop; php-fpm takes
// SIGTERM as "terminate now", and escalates a graceful SIGQUIT to SIGTERM after process_control_timeout (default 0).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "idlepool/core/address.h"
#include "idlepool/result.h"
#include "idlepool/sys/files.h"
#include "idlepool/wire/php_fpm_config.h"

namespace idlepool::kinds {

// Whether a service's ExecStart runs php-fpm (php-fpm, php-fpm8.2, /usr/sbin/php-fpm8.2, ...).
bool runs_php_fpm(const std::vector<std::vector<std::string>>& exec_start);

// The configuration file and prefix a php-fpm command line uses: --fpm-config/-y (else /etc/php/X.Y/fpm/php-fpm.conf
// for php-fpmX.Y), --prefix/-p (else /usr). Empty config if it cannot tell.
struct FpmInvocation {
  std::string config;
  std::string prefix = "/usr";
};
FpmInvocation fpm_invocation(const std::vector<std::string>& argv);

// What a pool's `listen` means: a TCP address, a unix path, or nothing php-fpm would accept.
struct FpmListen {
  std::optional<SocketAddress> address;
  std::string problem;  // why not, when it is not an address
};
FpmListen parse_fpm_listen(const std::string& value);

}  // namespace idlepool::kinds
