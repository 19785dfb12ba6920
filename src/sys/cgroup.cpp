#include "idlepool/sys/cgroup.h"

#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <set>

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

size_t CgroupFs::for_each_waiting(const std::string& cgroup, const std::vector<uint32_t>& inodes,
                                  const std::function<bool(int32_t pid, int fd)>& found) {
  auto text = read_text_file(cgroup_root_ + cgroup + "/cgroup.procs");
  if (!text) return 0;
  auto pids = wire::parse_cgroup_procs(*text);
  if (!pids) return 0;
  std::set<uint32_t> wanted(inodes.begin(), inodes.end());
  size_t n = 0;
  for (int32_t pid : *pids) {
    std::string dir = proc_root_ + "/" + std::to_string(pid);
    auto call = read_text_file(dir + "/syscall");
    if (!call) continue;
    auto fd = wire::parse_blocked_read_fd(*call);
    if (!fd) continue;
    char link[64];
    ssize_t len = ::readlink((dir + "/fd/" + std::to_string(*fd)).c_str(), link, sizeof(link));
    if (len <= 0 || static_cast<size_t>(len) >= sizeof(link)) continue;
    auto inode = wire::parse_socket_link(std::string_view(link, static_cast<size_t>(len)));
    if (inode && wanted.count(*inode) && found(pid, *fd)) {
      wanted.erase(*inode);
      ++n;
    }
  }
  return n;
}

size_t CgroupFs::waiting_readers(const std::string& cgroup, const std::vector<uint32_t>& inodes) {
  return for_each_waiting(cgroup, inodes, [](int32_t, int) { return true; });
}

size_t CgroupFs::shut_down_waiting(const std::string& cgroup, const std::vector<uint32_t>& inodes) {
  std::set<uint32_t> wanted(inodes.begin(), inodes.end());
  return for_each_waiting(cgroup, inodes, [&wanted](int32_t pid, int fd) {
    UniqueFd process(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
    if (!process.valid()) return false;
    UniqueFd socket(static_cast<int>(::syscall(SYS_pidfd_getfd, process.get(), fd, 0)));
    // The descriptor may have been closed and reused since it was looked at: only the very socket is shut down.
    struct stat st {};
    if (!socket.valid() || ::fstat(socket.get(), &st) != 0 || !wanted.count(static_cast<uint32_t>(st.st_ino)))
      return false;
    // Bytes waiting to be read are a request that arrived since: that connection is not idle any more.
    int pending = 0;
    if (::ioctl(socket.get(), FIONREAD, &pending) != 0 || pending > 0) return false;
    return ::shutdown(socket.get(), SHUT_RDWR) == 0;
  });
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
