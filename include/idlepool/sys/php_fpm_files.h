// Reads a php-fpm service's configuration from disk for stop-safety checks: the file named on its ExecStart (or
// php-fpm's default for that binary) and the files its `include =` globs name.
#pragma once

#include <string>
#include <vector>

#include "idlepool/core/php_fpm.h"
#include "idlepool/result.h"

namespace idlepool::sys {

// Whether a service's ExecStart runs php-fpm (php-fpm, php-fpm8.2, ...).
bool runs_php_fpm(const std::vector<std::vector<std::string>>& exec_start);

// The configuration file a php-fpm command line uses: --fpm-config/-y, else /etc/php/X.Y/fpm/php-fpm.conf for
// php-fpmX.Y. Empty if it cannot tell.
std::string php_fpm_config_path(const std::vector<std::string>& argv);

// Reads `path` and its includes (globs, at most 256 files). Errors name the file.
Result<PhpFpmConfig> read_php_fpm_config(const std::string& path);

}  // namespace idlepool::sys
