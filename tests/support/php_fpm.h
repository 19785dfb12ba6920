// A real php-fpm pool (Debian's php-fpm8.2) started from a generated configuration in a private temp directory,
// for benchmarks and tests that need the real server rather than a stand-in.
#pragma once

#include <sys/types.h>

#include <map>
#include <string>

#include "idlepool/core/address.h"

namespace idlepool::testing {

struct PhpFpmOptions {
  std::string pm = "static";  // static, dynamic or ondemand
  int max_children = 1;
  int process_idle_timeout_s = 10;         // ondemand
  bool tcp = false;                        // listen on 127.0.0.1:<free port> instead of a unix socket
  std::map<std::string, std::string> env;  // added to php-fpm's environment (e.g. LD_PRELOAD)
};

class PhpFpmPool {
 public:
  explicit PhpFpmPool(const PhpFpmOptions& options = {});
  ~PhpFpmPool();
  PhpFpmPool(const PhpFpmPool&) = delete;
  PhpFpmPool& operator=(const PhpFpmPool&) = delete;

  const SocketAddress& address() const { return address_; }
  pid_t master_pid() const { return master_; }
  // Writes a PHP script into the pool's document folder and returns its path.
  std::string script(const std::string& name, const std::string& php_source) const;

 private:
  std::string dir_;
  SocketAddress address_;
  pid_t master_ = -1;
};

// Path of Debian's php-fpm binary (php-fpm8.2), or empty if it is not installed.
std::string php_fpm_binary();

}  // namespace idlepool::testing
