#include "idlepool/wire/procfs.h"

#include <sys/syscall.h>

#include <charconv>
#include <sstream>

namespace idlepool::wire {
namespace {

// mountinfo escapes space, tab, newline and backslash in paths as \ooo.
std::string unescape(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 3 < s.size()) {
      int v = (s[i + 1] - '0') * 64 + (s[i + 2] - '0') * 8 + (s[i + 3] - '0');
      out.push_back(static_cast<char>(v));
      i += 3;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

}  // namespace

Result<std::string> find_cgroup2_mount(std::string_view mountinfo) {
  // ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPEROPTIONS
  size_t start = 0;
  while (start < mountinfo.size()) {
    size_t end = mountinfo.find('\n', start);
    if (end == std::string_view::npos) end = mountinfo.size();
    std::string_view line = mountinfo.substr(start, end - start);
    start = end + 1;
    size_t dash = line.find(" - ");
    if (dash == std::string_view::npos) continue;
    std::istringstream after{std::string(line.substr(dash + 3))};
    std::string fstype;
    after >> fstype;
    if (fstype != "cgroup2") continue;
    std::istringstream before{std::string(line.substr(0, dash))};
    std::string id, parent, dev, root, mountpoint;
    // A mount point is absolute; anything else is not a mountinfo line.
    if (before >> id >> parent >> dev >> root >> mountpoint && mountpoint[0] == '/') return unescape(mountpoint);
  }
  return Error{"no cgroup2 filesystem is mounted (cgroup v2 is required; see /proc/self/mountinfo)", ENOENT};
}

Result<std::vector<int32_t>> parse_cgroup_procs(std::string_view text) {
  std::vector<int32_t> pids;
  size_t start = 0;
  int line_no = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(start, end - start);
    start = end + 1;
    ++line_no;
    if (line.empty()) continue;
    int32_t pid = 0;
    auto [p, ec] = std::from_chars(line.data(), line.data() + line.size(), pid);
    if (ec != std::errc() || p != line.data() + line.size() || pid <= 0)
      return Error{"cgroup.procs line " + std::to_string(line_no) + " is not a pid: '" + std::string(line) + "'",
                   EBADMSG};
    pids.push_back(pid);
  }
  return pids;
}

Result<int32_t> parse_stat_ppid(std::string_view stat) {
  // PID (COMM) STATE PPID ...
  size_t close = stat.rfind(')');
  if (close == std::string_view::npos || close + 2 >= stat.size())
    return Error{"/proc/PID/stat without a '(command)' field", EBADMSG};
  std::istringstream rest{std::string(stat.substr(close + 2))};
  std::string state;
  int32_t ppid = -1;
  if (!(rest >> state >> ppid) || ppid < 0) return Error{"/proc/PID/stat without a parent pid", EBADMSG};
  return ppid;
}

std::optional<uint32_t> parse_socket_link(std::string_view link) {
  constexpr std::string_view kPrefix = "socket:[";
  if (link.substr(0, kPrefix.size()) != kPrefix || link.size() < kPrefix.size() + 2 || link.back() != ']')
    return std::nullopt;
  std::string_view digits = link.substr(kPrefix.size(), link.size() - kPrefix.size() - 1);
  uint32_t inode = 0;
  auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), inode);
  if (ec != std::errc() || end != digits.data() + digits.size()) return std::nullopt;
  return inode;
}

std::optional<int> parse_blocked_read_fd(std::string_view text) {
  // "NR ARG0 ARG1 ... SP PC": the number in decimal, the arguments in hex ("0x5").
  auto space = text.find(' ');
  if (space == std::string_view::npos) return std::nullopt;
  long nr = -1;
  auto [nr_end, nr_ec] = std::from_chars(text.data(), text.data() + space, nr);
  if (nr_ec != std::errc() || nr_end != text.data() + space) return std::nullopt;
  if (nr != SYS_read && nr != SYS_readv && nr != SYS_recvfrom && nr != SYS_recvmsg) return std::nullopt;
  std::string_view arg = text.substr(space + 1);
  arg = arg.substr(0, arg.find(' '));
  if (arg.substr(0, 2) != "0x") return std::nullopt;
  arg.remove_prefix(2);
  unsigned long fd = 0;
  auto [end, ec] = std::from_chars(arg.data(), arg.data() + arg.size(), fd, 16);
  if (ec != std::errc() || end != arg.data() + arg.size() || fd > 0x7fffffff) return std::nullopt;
  return static_cast<int>(fd);
}

}  // namespace idlepool::wire
