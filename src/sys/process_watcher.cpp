#include "idlepool/sys/process_watcher.h"

#include <algorithm>

namespace idlepool::sys {

ProcessWatcher::ProcessWatcher(std::unique_ptr<ProcConnector> connector, CgroupReader& cgroups)
    : connector_(std::move(connector)), cgroups_(cgroups) {}

Result<void> ProcessWatcher::add_pool(const std::string& pool, const std::string& cgroup,
                                      std::optional<int32_t> main_pid) {
  // Events queued before the seed are about processes the seed will show (or that are gone): drop them first.
  if (auto drained = connector_->drain([](const wire::ProcEvent&) {}); !drained) return drained.error();
  auto members = cgroups_.members(cgroup);
  if (!members) return Error{"pool " + pool + ": " + members.error().message, members.error().code};
  cgroup_of_[pool] = cgroup;
  tracker_.sync(pool, *members, main_pid);
  return {};
}

void ProcessWatcher::remove_pool(const std::string& pool) {
  tracker_.remove(pool);
  cgroup_of_.erase(pool);
}

Result<std::vector<PoolEvent>> ProcessWatcher::resync_all(
    const std::unordered_map<std::string, PoolProcesses>& before) {
  std::vector<PoolEvent> out;
  for (const auto& [pool, cgroup] : cgroup_of_) {
    auto members = cgroups_.members(cgroup);
    // A cgroup that cannot be read keeps the pool in doubt, which is safe: it reports nothing as empty.
    if (!members) continue;
    ++stats_.resyncs;
    tracker_.sync(pool, *members);
    // Against the state before the drain: events applied in it may already have moved the tracker.
    auto was = before.find(pool);
    auto now = tracker_.processes(pool);
    if (was == before.end() || !now) continue;
    auto found = ProcessTracker::changes(pool, was->second, *now);
    out.insert(out.end(), found.begin(), found.end());
  }
  return out;
}

void ProcessWatcher::confirm(const PoolEvent& e, std::vector<PoolEvent>& out) {
  if (e.kind == PoolEvent::Kind::kMainExited) {
    out.push_back(e);
    return;
  }
  auto it = cgroup_of_.find(e.pool);
  if (it == cgroup_of_.end()) return;
  auto members = cgroups_.members(it->second);
  if (!members) return;  // cannot confirm: say nothing
  auto known = tracker_.processes(e.pool);
  size_t alive = members->size();
  bool agrees = known && alive == known->processes;
  if (agrees) {
    out.push_back(e);
    return;
  }
  ++stats_.corrected;
  ++stats_.resyncs;
  auto found = tracker_.sync(e.pool, *members);
  out.insert(out.end(), found.begin(), found.end());
}

Result<std::vector<PoolEvent>> ProcessWatcher::on_readable() {
  std::unordered_map<std::string, PoolProcesses> before;
  for (const auto& [pool, cgroup] : cgroup_of_)
    if (auto p = tracker_.processes(pool)) before.emplace(pool, *p);
  std::vector<PoolEvent> raw;
  auto drained = connector_->drain([&](const wire::ProcEvent& ev) {
    auto events = tracker_.apply(ev);
    raw.insert(raw.end(), events.begin(), events.end());
  });
  if (!drained) return drained.error();
  std::vector<PoolEvent> out;
  if (drained->lost) {
    // Which events were lost, and so which of the events above can be trusted, is unknown: keep only the exits of
    // main processes (certain facts, with their status) and let every cgroup say the rest.
    ++stats_.loss_episodes;
    tracker_.mark_lost();
    for (const auto& e : raw)
      if (e.kind == PoolEvent::Kind::kMainExited) out.push_back(e);
    if (!deferred_before_) deferred_before_ = std::move(before);
    auto now = std::chrono::steady_clock::now();
    if (last_resync_ && now - *last_resync_ < kMinResyncInterval) {
      ++stats_.deferred_resyncs;
      return out;  // in doubt until resync_due()
    }
    auto found = resync_deferred();
    if (!found) return found.error();
    for (const auto& e : *found) {
      bool known =
          std::any_of(out.begin(), out.end(), [&](const PoolEvent& o) { return o.kind == e.kind && o.pool == e.pool; });
      if (!known) out.push_back(e);
    }
    return out;
  }
  for (const auto& e : raw) confirm(e, out);
  return out;
}

std::optional<std::chrono::steady_clock::time_point> ProcessWatcher::resync_due() const {
  if (!deferred_before_) return std::nullopt;
  return last_resync_ ? *last_resync_ + kMinResyncInterval : std::chrono::steady_clock::now();
}

Result<std::vector<PoolEvent>> ProcessWatcher::resync_deferred() {
  if (!deferred_before_) return std::vector<PoolEvent>{};
  auto before = std::move(*deferred_before_);
  deferred_before_.reset();
  last_resync_ = std::chrono::steady_clock::now();
  return resync_all(before);
}

ProcessWatcherStats ProcessWatcher::stats() const {
  ProcessWatcherStats s = stats_;
  s.connector = connector_->stats();
  return s;
}

}  // namespace idlepool::sys
