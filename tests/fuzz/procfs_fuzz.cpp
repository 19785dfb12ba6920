// Fuzzes the readers of /proc and cgroupfs text (a process's stat line holds its own name, which any user sets,
// parentheses and spaces included): any text gives a value or an error, never a crash.
#include <cstdint>
#include <string_view>

#include "idlepool/wire/procfs.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  auto ppid = idlepool::wire::parse_stat_ppid(in);
  if (ppid && *ppid < 0) __builtin_trap();
  auto pids = idlepool::wire::parse_cgroup_procs(in);
  if (pids)
    for (auto pid : *pids)
      if (pid <= 0) __builtin_trap();
  auto mount = idlepool::wire::find_cgroup2_mount(in);
  if (mount && (mount->empty() || (*mount)[0] != '/')) __builtin_trap();
  // /proc/PID/syscall and /proc/PID/fd links, read for keepalive-connections = close.
  auto fd = idlepool::wire::parse_blocked_read_fd(in);
  if (fd && *fd < 0) __builtin_trap();
  (void)idlepool::wire::parse_socket_link(in);
  return 0;
}
