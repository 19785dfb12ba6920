// Which processes each pool has, followed from process-connector events: pure bookkeeping, no I/O. A pool is a
// systemd service; its processes are those of its cgroup. The tracker is told a pool's members (read from
// cgroup.procs) when the pool is added or resynchronised, and follows fork and exit events from there: a child of
// a member is a member, a member that exits is gone. It reports what the daemon reacts to: the last worker exited
// (php-fpm's ondemand pools reap idle workers), the main process exited, the pool became empty.
//
// Lost events (the netlink receive buffer overflowed) make the tracker unsure; until the pools are resynchronised
// from their cgroups, it never reports a pool as empty or workerless on the strength of events alone.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "idlepool/core/proc_event.h"

namespace idlepool {

// A process of a pool's cgroup and its parent.
struct ProcessMember {
  int32_t pid = 0;
  int32_t ppid = 0;
};

// How a process ended, from its wait(2) status.
struct ExitStatus {
  bool known = false;
  bool signaled = false;
  int value = 0;  // exit code, or the signal that killed it

  static ExitStatus from_wait_status(uint32_t status);
  std::string to_string() const;  // "exited 0", "killed by signal 9", "unknown"
  friend bool operator==(const ExitStatus&, const ExitStatus&) = default;
};

struct PoolProcesses {
  uint32_t processes = 0;  // alive, main included
  uint32_t workers = 0;    // alive, other than the main process
  bool main_alive = false;
  int32_t main_pid = 0;  // 0 if unknown
};

struct PoolEvent {
  enum class Kind { kLastWorkerExited, kMainExited, kBecameEmpty };
  std::string pool;
  Kind kind = Kind::kBecameEmpty;
  int32_t pid = 0;     // the process whose exit caused it (0 when found by a resync)
  ExitStatus status;   // its exit status, when known
  uint64_t at_ns = 0;  // CLOCK_MONOTONIC of the exit, from the kernel's event (0 when found by a resync)
  friend bool operator==(const PoolEvent& a, const PoolEvent& b) {
    return a.pool == b.pool && a.kind == b.kind && a.pid == b.pid && a.status == b.status;
  }
};
std::string to_string(PoolEvent::Kind kind);

class ProcessTracker {
 public:
  // Sets what is known of `pool` from its cgroup's members. The main process is `main_pid` if given (systemd's
  // MainPID), else the one kept from before, else the member whose parent is not a member (the lowest such pid).
  // Returns what changed since the pool was last known (nothing for a new pool), and clears the pool's doubt.
  std::vector<PoolEvent> sync(const std::string& pool, const std::vector<ProcessMember>& members,
                              std::optional<int32_t> main_pid = std::nullopt);
  void remove(const std::string& pool);
  // Follows one event; returns what it means for the pools.
  std::vector<PoolEvent> apply(const ProcEvent& event);
  // Events were lost: every pool is in doubt until synced again.
  void mark_lost();

  std::optional<PoolProcesses> processes(const std::string& pool) const;
  // What going from `before` to `after` means for `pool` (found by a resync, so no pid or status).
  static std::vector<PoolEvent> changes(const std::string& pool, const PoolProcesses& before,
                                        const PoolProcesses& after);
  bool in_doubt(const std::string& pool) const;
  std::vector<std::string> pools() const;
  // The pool a process belongs to, if any.
  const std::string* pool_of(int32_t pid) const;

 private:
  struct Pool {
    std::unordered_set<int32_t> pids;
    int32_t main_pid = 0;
    bool doubt = false;
  };
  static PoolProcesses count(const Pool& p);
  void on_exit(const ProcEvent& event, std::vector<PoolEvent>& out);

  std::unordered_map<std::string, Pool> pools_;
  std::unordered_map<int32_t, std::string> owner_;
};

}  // namespace idlepool
