// Text the kernel exposes under /proc and cgroupfs, parsed without I/O so that it can be tested on fixtures:
// which mount is the cgroup v2 hierarchy, a cgroup.procs list, a process's parent from /proc/PID/stat.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "idlepool/result.h"

namespace idlepool::wire {

// The mount point of the cgroup2 filesystem in /proc/self/mountinfo text (/sys/fs/cgroup on unified hosts,
// /sys/fs/cgroup/unified on hybrid ones). Error if there is none.
Result<std::string> find_cgroup2_mount(std::string_view mountinfo);

// The pids in cgroup.procs text, one per line. Error naming the line on anything else.
Result<std::vector<int32_t>> parse_cgroup_procs(std::string_view text);

// The parent pid in /proc/PID/stat text. The command name in parentheses may itself hold spaces and ')'.
Result<int32_t> parse_stat_ppid(std::string_view stat);

// The socket inode a /proc/PID/fd/N link names ("socket:[12345]"), if it names a socket.
std::optional<uint32_t> parse_socket_link(std::string_view link);

// /proc/PID/syscall of a blocked process: the fd it waits to read from, if the system call is a read of one fd
// (read, readv, recvfrom, recvmsg, by their numbers on this architecture). "running", another call or malformed
// text: none.
std::optional<int> parse_blocked_read_fd(std::string_view syscall_text);

}  // namespace idlepool::wire
