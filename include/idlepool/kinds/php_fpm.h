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

// Whether a pool keeps its compiled scripts across a stop. opcache lives in the master's shared memory, so a stop
// throws it away and a wake compiles the whole site again, unless opcache.file_cache names a directory the next master
// loads them from. That directory is code the pool runs: it must be the pool's user's alone.
struct OpcacheSettings {
  bool known = false;      // the master's php.ini could be read
  bool loaded = false;     // a zend_extension line loads opcache
  bool enabled = true;     // opcache.enable
  std::string file_cache;  // opcache.file_cache ("" none)
  std::string where;       // the file and line that set file_cache
};

// The ini files a php-fpm command line reads: its php.ini (-c FILE or DIR, else Debian's /etc/php/X.Y/fpm/php.ini for
// php-fpmX.Y), the scan directory's *.ini, none with -n; and its -d KEY=VALUE settings, applied last.
struct PhpIniFiles {
  std::string ini;       // "" when it cannot tell
  std::string scan_dir;  // conf.d
  std::vector<std::pair<std::string, std::string>> defines;
};
PhpIniFiles php_ini_files(const std::vector<std::string>& argv);

// Applies the settings of one ini file (php.ini syntax) that matter to opcache. Errors name the file and line.
Result<void> apply_php_ini(std::string_view text, const std::string& file, OpcacheSettings& settings);
void apply_php_ini_setting(const std::string& key, const std::string& value, OpcacheSettings& settings);

// The master's settings as one pool sees them: its php_value/php_flag/php_admin_* lines win.
OpcacheSettings pool_opcache(OpcacheSettings master, const wire::FpmSection& pool);

// What deserves a warning about a pool's opcache: none kept across stops, or a file cache another user can write.
// `dir` and `parent` are the file cache directory and the one that holds it (absent: not there).
std::vector<std::string> judge_opcache(const wire::FpmSection& pool, const OpcacheSettings& settings,
                                       const std::optional<sys::FileStat>& dir,
                                       const std::optional<sys::FileStat>& parent);

}  // namespace idlepool::kinds
