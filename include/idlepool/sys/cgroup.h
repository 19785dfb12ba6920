// Reading pools' cgroups. A seam: the process watcher asks it for a pool's members (to seed and to resynchronise its
// tracking), and tests can point it at a temporary tree instead of /sys/fs/cgroup and /proc (oomd's Fixture idea).
#pragma once

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
  const std::string& root() const { return cgroup_root_; }

 private:
  std::string cgroup_root_;
  std::string proc_root_;
};

// Reads a whole (small) file; errors name the path.
Result<std::string> read_text_file(const std::string& path);

}  // namespace idlepool::sys
