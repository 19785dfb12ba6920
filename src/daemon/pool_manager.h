// The daemon's logic: which pools exist (systemd units matching the configuration, with their .socket units), what
// is known of each (probe counters, processes, unit state, its kind's verdict on stopping it), what the policy
// decides, and carrying out the stops. Every side effect goes through an interface it is given (ServiceManager,
// ListenerSource, ProcessSource, the service kinds, a clock), so unit tests drive it with fakes and the daemon with
// the real adapters. Calls to systemd are asynchronous: their answers come back through callbacks from the event
// loop, and nothing here ever waits for one.
//
// Layout: pool_manager.cpp orchestrates (events in, decisions, stops), discovery.cpp finds and reads pools,
// pool_status.cpp renders the status model (read-only).
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "idlepool/core/config.h"
#include "idlepool/core/policy.h"
#include "idlepool/core/process_tracker.h"
#include "idlepool/core/status.h"
#include "idlepool/kinds/service_kind.h"
#include "idlepool/sys/probe.h"
#include "idlepool/sys/process_watcher.h"
#include "idlepool/sys/service_manager.h"
#include "idlepool/sys/sock_diag.h"
#include "idlepool/wire/rhythm_state.h"
#include "pool.h"

namespace idlepool::daemon {

using Clock = std::function<MonoTime()>;
// Whether a unix socket path exists as a socket (post-stop check; tests fake it).
using SocketPathCheck = std::function<bool(const std::string& path)>;
// memory.current of a cgroup, when accounted.
using MemoryReader = std::function<std::optional<uint64_t>(const std::string& cgroup)>;
// How many of the sockets (inodes) a process of a cgroup is blocked reading (sys::CgroupReader::waiting_readers).
using WaitingReaders = std::function<size_t(const std::string& cgroup, const std::vector<uint32_t>& inodes)>;
// Shuts down those of the sockets a process of the cgroup is blocked reading (sys::CgroupReader::shut_down_waiting).
using KeptAliveCloser = WaitingReaders;
// Opens and closes one connection to a listening socket (sys::start_nudge; tests record the calls): to the unix
// socket file the probe registered, when it knows it. Must not block.
using Nudger = std::function<Result<void>(const SocketAddress& address, const std::optional<sys::SocketFile>& file)>;

// Daemon-wide counts, for the status model.
struct ManagerStats {
  uint64_t deferred_rate_limit = 0;  // stops that were due and waited for the stop rate limit
  uint64_t deferred_in_flight = 0;   // ... for work in flight
  uint64_t bus_errors = 0;           // failed calls to systemd
  uint64_t units_read = 0;           // service units read from systemd (discovery, starts, reloads)
};

class PoolManager {
 public:
  struct Deps {
    sys::ServiceManager& systemd;
    sys::ListenerSource& probe;
    sys::ProcessSource& processes;
    const kinds::Kinds& kinds;
    Clock now;
    SocketPathCheck socket_exists;
    MemoryReader memory;
    Nudger nudge;
    WaitingReaders waiting_readers;
    KeptAliveCloser close_kept_alive;
  };
  PoolManager(DaemonConfig config, Deps deps);

  // Finds the pools the configuration names, adds new ones, forgets those that are gone: asynchronously, in batches;
  // `done` (if any) is called when this discovery has finished. A discovery asked for while one runs follows it.
  void discover(std::function<void()> done = {});
  bool discovering() const { return discovery_.running; }
  // While a discovery reads units: between batches, with the units read so far (the daemon extends systemd's start
  // timeout with it).
  void on_discovery_progress(std::function<void(size_t done, size_t total)> f) { progress_ = std::move(f); }
  // Takes in what systemd reported; affected pools are decided again at the next evaluate().
  void on_unit_events(const std::vector<sys::UnitEvent>& events);
  // Takes in what the process watcher reported: a pool whose last worker or main process exited is decided again
  // at once.
  void on_pool_events(const std::vector<PoolEvent>& events);
  // Decides for every pool and stops those that are due (within the stop rate limit). Returns when to look again:
  // the earliest deadline of any pool, or nothing if no pool has one.
  std::optional<MonoTime> evaluate();
  // A pool (or anything) changed since the last evaluate(): the daemon evaluates before sleeping.
  bool dirty() const { return dirty_; }
  // New configuration (SIGHUP): pools and their state are kept; policies and patterns change.
  void reconfigure(DaemonConfig config);

  // Reads the probe's counters and the pools' memory for a status request or a scrape. Decides nothing and moves
  // no timing: only the readings shown change.
  void refresh();
  // idlepoolctl: pins survive reloads but not restarts (pins meant to last belong in the configuration).
  Result<void> pin(const std::string& unit, bool on);
  // Stops `unit` now if that is safe (every rule of the policy but the idle timeout); refuses with the reason.
  Result<std::string> stop_now(const std::string& unit);
  bool has(const std::string& unit) const { return pools_.count(unit) > 0; }
  // The pools' learnt rhythms (for the state file), and those read back from it: a pool not found yet takes its own
  // when discovery adds it.
  std::map<std::string, wire::LearntRhythm> learnt() const;
  void restore(std::map<std::string, wire::LearntRhythm> learnt);

  // The status model's pools, audits and summary (pool_status.cpp). Read-only.
  std::vector<status::Pool> status() const;
  std::vector<status::Audit> audit() const;
  std::string summary() const;
  const ManagerStats& stats() const { return stats_; }
  struct DiscoveryProgress {
    bool running = false;
    size_t done = 0, total = 0;
  };
  DiscoveryProgress discovery_progress() const { return {discovery_.running, discovery_.done, discovery_.total}; }
  MonoTime now() const { return deps_.now(); }

 private:
  // ---- discovery (discovery.cpp) ----
  struct Discovery {
    bool running = false;
    bool again = false;  // asked for while running
    std::vector<std::string> wanted;
    std::vector<std::string> fresh;
    size_t done = 0, total = 0;
    std::vector<std::string> added;
    std::chrono::steady_clock::time_point started;
    std::vector<std::function<void()>> waiting;
    // Units whose read is in flight, and what systemd signalled about them meanwhile: newer than the read's answer,
    // applied once the pool is in the model (a read asked for if a signal could not say).
    std::map<std::string, std::vector<sys::UnitChanges>> reading;
    std::set<std::string> reread;
  };
  void list_wanted();
  void read_next_chunk();
  std::vector<std::string> add_services(const std::vector<std::string>& chunk,
                                        std::vector<Result<ServiceUnit>> services);
  void set_sockets_from(Pool& pool, const std::map<std::string, Result<SocketUnit>>& read);
  void finish_discovery();
  void forget(const std::string& unit);
  bool manages(const std::string& unit) const;

  // ---- a pool's units ----
  void set_sockets(Pool& pool, std::vector<SocketUnit> sockets);
  void read_sockets_of(const std::vector<std::string>& units);
  void register_listeners(const std::vector<Pool*>& pools);
  void unregister_listeners(Pool& pool);
  void assess_safety(Pool& pool);
  void apply_service(Pool& pool, ServiceUnit svc);
  void on_stopped(Pool& pool);
  void on_started(Pool& pool);
  void follow_processes(Pool& pool);
  void check_socket_paths(Pool& pool);
  void read_services_of(const std::vector<std::string>& units);
  void after_reload();
  void apply_socket_events(const std::set<std::string>& reads,
                           const std::map<std::string, std::vector<sys::UnitChanges>>& patches);
  void apply_patches(Pool& pool, const std::vector<sys::UnitChanges>& patches);

  // ---- deciding and acting ----
  PoolSnapshot snapshot(const Pool& pool, MonoTime now) const;
  uint64_t accepts_of(const Pool& pool) const;
  PoolPolicy policy_for(const std::string& unit) const;
  PoolSnapshot observe(Pool& pool, MonoTime now);
  Decision decide_one(Pool& pool, const PoolSnapshot& snap, MonoTime now);
  // The inodes of the idle kept-alive connections of the pool's sockets, as the probe last read them.
  std::vector<uint32_t> idle_inodes_of(const Pool& pool) const;
  std::optional<Decision> recheck_before_stop(Pool& pool, const PoolPolicy& policy, MonoTime now);
  std::optional<MonoTime> after_decision(Pool& pool, const PoolSnapshot& snap, MonoTime now);
  void stop(Pool& pool, MonoTime now);
  void repair_stall(Pool& pool, const PoolSnapshot& snap, MonoTime now);
  // The adaptive window's looks and the pre-warms: when to look at the pool again for them.
  std::optional<MonoTime> follow_rhythm(Pool& pool, const PoolSnapshot& snap, MonoTime now);
  void prewarm(Pool& pool, const PrewarmPlan& plan);
  bool read_counters();
  void time_wakes();
  void time_visitor_wake(Pool& pool);

  DaemonConfig config_;
  Deps deps_;
  StopRateLimiter limiter_;
  std::map<std::string, Pool> pools_;
  std::map<sys::ListenerId, sys::ListenerSnapshot> last_counters_;
  std::map<std::string, std::string> socket_owners_;  // canonical unix socket path -> the pool it belongs to
  std::set<std::string> runtime_pins_;
  std::map<std::string, wire::LearntRhythm> restored_;  // read from the state file, for pools not found yet
  ManagerStats stats_;
  Discovery discovery_;
  bool dirty_ = true;
  std::function<void(size_t, size_t)> progress_;
};

}  // namespace idlepool::daemon
