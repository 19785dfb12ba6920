#include "idlepool/sys/cgroup.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

#include "idlepool/sys/unique_fd.h"
#include "idlepool/wire/procfs.h"

namespace idlepool::sys {

Result<std::string> read_text_file(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return Error::from_errno("cannot open " + path, errno);
  std::string out;
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(fd.get(), buf, sizeof(buf));
    if (n < 0) {
      if (errno == EINTR) continue;
      return Error::from_errno("cannot read " + path, errno);
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

Result<CgroupFs> CgroupFs::open() {
  auto mountinfo = read_text_file("/proc/self/mountinfo");
  if (!mountinfo) return mountinfo.error();
  auto root = wire::find_cgroup2_mount(*mountinfo);
  if (!root) return root.error();
  return CgroupFs(*root, "/proc");
}

std::optional<uint64_t> CgroupFs::memory_current(const std::string& cgroup) {
  auto text = read_text_file(cgroup_root_ + cgroup + "/memory.current");
  if (!text) return std::nullopt;
  try {
    return std::stoull(*text);
  } catch (...) {
    return std::nullopt;
  }
}

Result<std::vector<ProcessMember>> CgroupFs::members(const std::string& cgroup) {
  std::string path = cgroup_root_ + cgroup + "/cgroup.procs";
  auto text = read_text_file(path);
  if (!text) return text.error();
  auto pids = wire::parse_cgroup_procs(*text);
  if (!pids) return Error{path + ": " + pids.error().message, pids.error().code};
  std::vector<ProcessMember> out;
  out.reserve(pids->size());
  for (int32_t pid : *pids) {
    auto stat = read_text_file(proc_root_ + "/" + std::to_string(pid) + "/stat");
    if (!stat) continue;  // exited since cgroup.procs was read
    auto ppid = wire::parse_stat_ppid(*stat);
    if (!ppid) continue;
    out.push_back({pid, *ppid});
  }
  return out;
}

}  // namespace idlepool::sys
