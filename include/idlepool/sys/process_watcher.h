// Per pool, which processes live, from the process connector's events and the pools' cgroups: the daemon's second
// input. Owns the connector (its fd joins the epoll loop) and a ProcessTracker; reads cgroups through CgroupReader.
//
// What it guarantees: a "last worker exited" or "pool became empty" it reports is true of the cgroup at that moment.
// Events can be lost (netlink overruns), and a process the tracker never saw would make a pool look empty; so every
// such report is checked against cgroup.procs first, and after a loss every pool is resynchronised from its cgroup.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "idlepool/core/process_tracker.h"
#include "idlepool/result.h"
#include "idlepool/sys/cgroup.h"
#include "idlepool/sys/proc_connector.h"

namespace idlepool::sys {

struct ProcessWatcherStats {
  ProcConnectorStats connector;
  uint64_t resyncs = 0;           // pools resynchronised from their cgroups
  uint64_t loss_episodes = 0;     // drains that found events lost
  uint64_t corrected = 0;         // reports withdrawn because the cgroup disagreed with the events
  uint64_t deferred_resyncs = 0;  // losses whose resync waited for kMinResyncInterval
};

// What the daemon needs of process tracking: a seam, so that its logic can be driven by a fake in unit tests.
class ProcessSource {
 public:
  virtual ~ProcessSource() = default;
  virtual Result<void> add_pool(const std::string& pool, const std::string& cgroup,
                                std::optional<int32_t> main_pid = {}) = 0;
  virtual void remove_pool(const std::string& pool) = 0;
  virtual std::optional<PoolProcesses> processes(const std::string& pool) const = 0;
};

class ProcessWatcher final : public ProcessSource {
 public:
  ProcessWatcher(std::unique_ptr<ProcConnector> connector, CgroupReader& cgroups);

  int fd() const { return connector_->fd(); }

  // Starts following `pool`, whose processes live in `cgroup` (a path below the cgroup2 root), seeding it from
  // cgroup.procs. main_pid: systemd's MainPID when known.
  Result<void> add_pool(const std::string& pool, const std::string& cgroup,
                        std::optional<int32_t> main_pid = {}) override;
  void remove_pool(const std::string& pool) override;

  // Reads the pending events (call when fd() is readable) and returns what they mean for the pools.
  Result<std::vector<PoolEvent>> on_readable();

  // After a loss every pool is resynchronised from its cgroup, but at most once a kMinResyncInterval: a flood of
  // overruns (any local user can cause them) must not make the daemon read every cgroup again and again. A loss
  // within the interval leaves the pools in doubt (no "empty" is reported on events alone) until resync_due(), when
  // the daemon calls resync_deferred().
  static constexpr std::chrono::seconds kMinResyncInterval{1};
  std::optional<std::chrono::steady_clock::time_point> resync_due() const;
  Result<std::vector<PoolEvent>> resync_deferred();

  std::optional<PoolProcesses> processes(const std::string& pool) const override { return tracker_.processes(pool); }
  ProcessWatcherStats stats() const;

 private:
  // Resynchronises every pool; reports the changes from `before` (the counts before the last drain).
  Result<std::vector<PoolEvent>> resync_all(const std::unordered_map<std::string, PoolProcesses>& before);
  // Keeps `e` if the pool's cgroup agrees with it; otherwise resynchronises the pool and appends what that finds.
  void confirm(const PoolEvent& e, std::vector<PoolEvent>& out);

  std::unique_ptr<ProcConnector> connector_;
  CgroupReader& cgroups_;
  ProcessTracker tracker_;
  std::unordered_map<std::string, std::string> cgroup_of_;
  ProcessWatcherStats stats_;
  std::optional<std::chrono::steady_clock::time_point> last_resync_;
  // A resync owed since a loss within the interval, with what the pools were before that loss.
  std::optional<std::unordered_map<std::string, PoolProcesses>> deferred_before_;
};

}  // namespace idlepool::sys
