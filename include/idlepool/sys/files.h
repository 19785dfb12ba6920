// Reading configuration files that belong to others (a pool's php-fpm configuration, its includes) as a root
// daemon: a seam, so that the service kinds are unit-tested on text, and bounded, because a site's files are
// untrusted input. The real reader opens without blocking and without a controlling terminal, takes regular files
// only (a FIFO would hang the daemon, /dev/zero would exhaust it) of at most a megabyte, and says why it refuses.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "idlepool/result.h"
#include "idlepool/wire/php_fpm_config.h"

namespace idlepool::sys {

// Who owns a file, who may write it, and when it changed.
struct FileStat {
  uid_t uid = 0;
  std::string user;      // the owner's name, or the number when it has none
  mode_t mode = 0;       // st_mode: type and permission bits
  int64_t mtime_ns = 0;  // last modification
};

class FileReader {
 public:
  virtual ~FileReader() = default;
  // The whole text of a regular file. Errors name the path and why.
  virtual Result<std::string> read(const std::string& path) = 0;
  // The paths a glob pattern names, sorted, directories left out; none is no error.
  virtual Result<std::vector<std::string>> glob(const std::string& pattern) = 0;
  // `path` with the symlinks of its directory resolved (/var/run/php/x.sock is /run/php/x.sock); the last component
  // is kept as it is (it may not exist: php-fpm's alias listen names nothing). Empty if the directory does not exist.
  virtual std::string canonical(const std::string& path) = 0;
  // Owner, mode and time of `path` (symlinks followed), or nothing if it is not there.
  virtual std::optional<FileStat> stat(const std::string& path) = 0;
};

class BoundedFiles final : public FileReader {
 public:
  static constexpr size_t kMaxFileBytes = 1 << 20;
  static constexpr size_t kMaxGlobMatches = 4096;

  Result<std::string> read(const std::string& path) override;
  Result<std::vector<std::string>> glob(const std::string& pattern) override;
  std::string canonical(const std::string& path) override;
  std::optional<FileStat> stat(const std::string& path) override;
};

// A php-fpm configuration and everything it includes, read through `files` (bounded) as php-fpm reads it; `prefix`
// is php-fpm's (relative include patterns are relative to it).
Result<wire::FpmConfig> read_fpm_config(FileReader& files, const std::string& path, const std::string& prefix = "/usr");

// Lets `group` read and write `path` through a POSIX access ACL (owner rw, named group rw, nobody else), as
// `setfacl -m g:GROUP:rw` would. The owner of a file may set its ACL, so root needs no CAP_CHOWN to share its control
// socket with a group. Fails with EOPNOTSUPP where the filesystem has no ACLs.
Result<void> grant_group_rw(const std::string& path, gid_t group);

// Writes `text` to `path` through a temporary file beside it (fsynced, then renamed over it), so that no reader and
// no crash ever sees half of it. The directory must exist.
Result<void> write_atomically(const std::string& path, const std::string& text, mode_t mode);

}  // namespace idlepool::sys
