// Reading pools' cgroups. A seam: the process watcher asks it for a pool's members (to seed and to resynchronise its
// tracking), and tests can point it at a temporary tree instead of /sys/fs/cgroup and /proc (oomd's Fixture idea).
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "idlepool/core/process_tracker.h"
#include "idlepool/result.h"

namespace idlepool::sys {

class CgroupReader {
 public:
  virtual ~CgroupReader() = default;
  // The processes of `cgroup` (a path below the cgroup2 root, e.g. /system.slice/php8.2-fpm.service) with their
  // parents. Processes that exit while being read are left out. Error if the cgroup cannot be read.
  virtual Result<std::vector<ProcessMember>> members(const std::string& cgroup) = 0;
  // memory.current of `cgroup`, if the memory controller accounts it.
  virtual std::optional<uint64_t> memory_current(const std::string& cgroup) = 0;
  // How many of the sockets `inodes` a process of `cgroup` is blocked reading right now: a server waiting for its
  // client's next request on a kept-alive connection. Unreadable processes count for nothing.
  virtual size_t waiting_readers(const std::string& cgroup, const std::vector<uint32_t>& inodes) = 0;
  // Shuts down those of the sockets `inodes` that a process of `cgroup` is blocked reading (found as above, through a
  // duplicate of its descriptor, pidfd_getfd): the server sees the client's end of stream and goes back to accept().
  // Returns how many it shut down.
  virtual size_t shut_down_waiting(const std::string& cgroup, const std::vector<uint32_t>& inodes) = 0;
};

// The real thing: cgroup.procs under the cgroup2 mount and /proc/PID/stat.
class CgroupFs final : public CgroupReader {
 public:
  // Finds the cgroup2 mount in /proc/self/mountinfo.
  static Result<CgroupFs> open();
  // For tests and unusual hosts: explicit roots.
  CgroupFs(std::string cgroup_root, std::string proc_root)
      : cgroup_root_(std::move(cgroup_root)), proc_root_(std::move(proc_root)) {}

  Result<std::vector<ProcessMember>> members(const std::string& cgroup) override;
  std::optional<uint64_t> memory_current(const std::string& cgroup) override;
  size_t waiting_readers(const std::string& cgroup, const std::vector<uint32_t>& inodes) override;
  size_t shut_down_waiting(const std::string& cgroup, const std::vector<uint32_t>& inodes) override;
  const std::string& root() const { return cgroup_root_; }

 private:
  // Calls `found(pid, fd)` for each of `inodes` a process of `cgroup` is blocked reading; returns how many.
  size_t for_each_waiting(const std::string& cgroup, const std::vector<uint32_t>& inodes,
                          const std::function<bool(int32_t pid, int fd)>& found);

  std::string cgroup_root_;
  std::string proc_root_;
};

// Reads a whole (small) file; errors name the path.
Result<std::string> read_text_file(const std::string& path);

}  // namespace idlepool::sys
