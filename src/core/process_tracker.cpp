#include "idlepool/core/process_tracker.h"

#include <sys/wait.h>

#include <algorithm>

namespace idlepool {

ExitStatus ExitStatus::from_wait_status(uint32_t status) {
  ExitStatus s;
  s.known = true;
  int st = static_cast<int>(status);
  if (WIFSIGNALED(st)) {
    s.signaled = true;
    s.value = WTERMSIG(st);
  } else {
    s.value = WEXITSTATUS(st);
  }
  return s;
}

std::string ExitStatus::to_string() const {
  if (!known) return "unknown";
  return signaled ? "killed by signal " + std::to_string(value) : "exited " + std::to_string(value);
}

std::string to_string(PoolEvent::Kind kind) {
  switch (kind) {
    case PoolEvent::Kind::kLastWorkerExited:
      return "last-worker-exited";
    case PoolEvent::Kind::kMainExited:
      return "main-exited";
    case PoolEvent::Kind::kBecameEmpty:
      return "became-empty";
  }
  return "?";
}

PoolProcesses ProcessTracker::count(const Pool& p) {
  PoolProcesses c;
  c.processes = static_cast<uint32_t>(p.pids.size());
  c.main_pid = p.main_pid;
  c.main_alive = p.main_pid != 0 && p.pids.count(p.main_pid) > 0;
  c.workers = c.processes - (c.main_alive ? 1 : 0);
  return c;
}

std::vector<PoolEvent> ProcessTracker::sync(const std::string& pool, const std::vector<ProcessMember>& members,
                                            std::optional<int32_t> main_pid) {
  auto existing = pools_.find(pool);
  bool is_new = existing == pools_.end();
  Pool& p = pools_[pool];
  PoolProcesses before = count(p);
  for (int32_t pid : p.pids) owner_.erase(pid);
  p.pids.clear();
  for (const auto& m : members) {
    p.pids.insert(m.pid);
    owner_[m.pid] = pool;
  }
  if (main_pid) {
    p.main_pid = *main_pid;
  } else if (p.main_pid == 0 || (!p.pids.count(p.main_pid) && before.processes == 0)) {
    // Unknown, or the pool was empty and started again: the root of the process tree is its main process.
    int32_t root = 0;
    for (const auto& m : members)
      if (!p.pids.count(m.ppid) && (root == 0 || m.pid < root)) root = m.pid;
    p.main_pid = root;
  }
  p.doubt = false;
  if (is_new) return {};
  return changes(pool, before, count(p));
}

std::vector<PoolEvent> ProcessTracker::changes(const std::string& pool, const PoolProcesses& before,
                                               const PoolProcesses& after) {
  std::vector<PoolEvent> out;
  if (before.main_alive && !after.main_alive && before.main_pid == after.main_pid)
    out.push_back({pool, PoolEvent::Kind::kMainExited, before.main_pid, {}});
  if (before.workers > 0 && after.workers == 0) out.push_back({pool, PoolEvent::Kind::kLastWorkerExited, 0, {}});
  if (before.processes > 0 && after.processes == 0) out.push_back({pool, PoolEvent::Kind::kBecameEmpty, 0, {}});
  return out;
}

void ProcessTracker::remove(const std::string& pool) {
  auto it = pools_.find(pool);
  if (it == pools_.end()) return;
  for (int32_t pid : it->second.pids) owner_.erase(pid);
  pools_.erase(it);
}

void ProcessTracker::mark_lost() {
  for (auto& [name, p] : pools_) p.doubt = true;
}

std::vector<PoolEvent> ProcessTracker::apply(const ProcEvent& event) {
  std::vector<PoolEvent> out;
  switch (event.kind) {
    case ProcEvent::Kind::kFork: {
      // A new thread is not a new process.
      if (event.pid != event.tgid) break;
      auto parent = owner_.find(event.parent_tgid);
      if (parent == owner_.end()) break;
      const std::string pool = parent->second;
      pools_[pool].pids.insert(event.tgid);
      owner_[event.tgid] = pool;
      break;
    }
    case ProcEvent::Kind::kExit:
      // A process ends when its thread-group leader exits (the other threads are gone by then).
      if (event.pid == event.tgid) on_exit(event, out);
      break;
    default:
      break;
  }
  return out;
}

void ProcessTracker::on_exit(const ProcEvent& event, std::vector<PoolEvent>& out) {
  auto owner = owner_.find(event.tgid);
  if (owner == owner_.end()) return;
  const std::string pool = owner->second;
  owner_.erase(owner);
  Pool& p = pools_[pool];
  PoolProcesses before = count(p);
  p.pids.erase(event.tgid);
  PoolProcesses after = count(p);
  ExitStatus status = ExitStatus::from_wait_status(event.exit_code);
  const uint64_t at = event.timestamp_ns;
  if (event.tgid == p.main_pid) out.push_back({pool, PoolEvent::Kind::kMainExited, event.tgid, status, at});
  // Workerless and empty are only claimed when no event of this pool may have been lost.
  if (p.doubt) return;
  if (before.workers > 0 && after.workers == 0 && after.main_alive)
    out.push_back({pool, PoolEvent::Kind::kLastWorkerExited, event.tgid, status, at});
  if (after.processes == 0) out.push_back({pool, PoolEvent::Kind::kBecameEmpty, event.tgid, status, at});
}

std::optional<PoolProcesses> ProcessTracker::processes(const std::string& pool) const {
  auto it = pools_.find(pool);
  if (it == pools_.end()) return std::nullopt;
  return count(it->second);
}

bool ProcessTracker::in_doubt(const std::string& pool) const {
  auto it = pools_.find(pool);
  return it != pools_.end() && it->second.doubt;
}

std::vector<std::string> ProcessTracker::pools() const {
  std::vector<std::string> out;
  for (const auto& [name, p] : pools_) out.push_back(name);
  std::sort(out.begin(), out.end());
  return out;
}

const std::string* ProcessTracker::pool_of(int32_t pid) const {
  auto it = owner_.find(pid);
  return it == owner_.end() ? nullptr : &it->second;
}

}  // namespace idlepool
