// The daemon's logic: which pools exist (systemd units matching the configuration, with their .socket units), what
// is known of each (probe counters, processes, unit state, stop safety), what the policy decides, and carrying out
// the stops. Every side effect goes through an interface it is given (ServiceManager, ListenerSource, ProcessSource,
// a clock), so unit tests drive it with fakes and the daemon with the real adapters.
#pragma once

#include <array>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "idlepool/core/address.h"
#include "idlepool/core/config.h"
#include "idlepool/core/php_fpm.h"
#include "idlepool/core/policy.h"
#include "idlepool/core/process_tracker.h"
#include "idlepool/core/status.h"
#include "idlepool/sys/probe.h"
#include "idlepool/sys/process_watcher.h"
#include "idlepool/sys/service_manager.h"

namespace idlepool::daemon {

using Clock = std::function<MonoTime()>;
// Reads a php-fpm service's configuration (the real one reads files; tests give text).
using PhpFpmReader = std::function<Result<PhpFpmConfig>(const std::string& path)>;
// Whether a unix socket path exists as a socket (post-stop check; tests fake it).
using SocketPathCheck = std::function<bool(const std::string& path)>;
// memory.current of a cgroup, when accounted.
using MemoryReader = std::function<std::optional<uint64_t>(const std::string& cgroup)>;
// Opens and closes one connection to a listening socket (sys::nudge; tests record the calls).
using Nudger = std::function<Result<void>(const SocketAddress& address)>;

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
    Clock now;
    PhpFpmReader read_php_fpm;
    SocketPathCheck socket_exists;
    MemoryReader memory;
    Nudger nudge;
  };
  PoolManager(DaemonConfig config, Deps deps);

  // Finds the pools the configuration names, adds new ones, forgets those that are gone. Logs what it finds.
  void discover();
  // Called every few dozen units while discover() reads them (the daemon extends systemd's start timeout with it),
  // between batches of a discovery with the units read so far; returning false abandons the rest (the daemon
  // is asked to stop): the pools read so far are kept.
  void on_discovery_progress(std::function<bool(size_t done, size_t total)> f) { progress_ = std::move(f); }
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

  // Reads the probe and the pools' memory without deciding anything (for a metrics scrape or a status request).
  void refresh();
  // idlepoolctl: pins survive reloads but not restarts (pins meant to last belong in the configuration).
  Result<void> pin(const std::string& unit, bool on);
  // Stops `unit` now if that is safe (every rule of the policy but the idle timeout); refuses with the reason.
  Result<std::string> stop_now(const std::string& unit);
  std::vector<status::Audit> audit() const;
  bool has(const std::string& unit) const { return pools_.count(unit) > 0; }

  std::vector<status::Pool> status() const;
  const ManagerStats& stats() const { return stats_; }
  MonoTime now() const { return deps_.now(); }
  // One line for sd_notify STATUS=.
  std::string summary() const;

 private:
  struct Pool {
    std::string unit;
    sys::ServiceUnit service;
    std::vector<sys::SocketUnit> sockets;
    struct Listener {
      std::string socket_unit;
      SocketAddress address;
      std::optional<sys::ListenerId> id;
    };
    std::vector<Listener> listeners;
    MonoTime watched_since{0};
    StopSafety safety;
    std::optional<std::string> unsafe_after_stop;
    bool down = true;  // inactive or failed (everything else, activating and deactivating too, is up)
    bool in_watcher = false;
    bool stop_requested = false;
    bool stopped_by_us = false;
    status::StopCause stop_cause = status::StopCause::kIdle;
    Decision decision;
    std::optional<MonoTime> last_activity;
    std::array<uint64_t, std::size(status::kStopCauses)> stops{};
    uint64_t wakes = 0;
    std::optional<uint64_t> memory_bytes;
    std::optional<uint64_t> memory_at_stop;
    uint64_t memory_released_bytes = 0;
    std::optional<MonoTime> waking_since;  // started by a connection after our stop: time its first use
    std::optional<MonoTime> process_event_at;  // a worker or main exit not yet followed by a decision
    status::LatencyHistogram wake_latency;
    bool can_wake = false;
    // Stalls (check_stall): connections queued with none accepted since `queued_since`. A stall starts only as the
    // last worker exits (php-fpm forks for every connection that arrives once it has none), so the daemon looks once,
    // stall_timeout after that exit (and after it began watching a running pool): no periodic looks.
    uint64_t accepts_seen = 0;
    std::optional<MonoTime> queued_since;
    std::optional<MonoTime> workers_gone_at;      // the last worker's exit (or the start of watching)
    bool stall_baseline_pending = false;          // its accepts are recorded at the next look
    std::optional<uint64_t> accepts_when_gone;    // accepts then: none since means a queued connection waited
    std::optional<MonoTime> stall_look_at;
    std::vector<MonoTime> starts;  // seen while watching, within systemd's start-limit interval
    bool nudge_on_stall = false;  // a php-fpm ondemand pool: a new connection makes its master fork a worker
    std::optional<MonoTime> last_nudge;
    bool stall_reported = false;  // said once a stall (a report, or a failed nudge)
    std::array<uint64_t, std::size(status::kStallActions)> stalls{};
  };

  // Sockets read ahead for a batch of pools (discovery), by unit name.
  using SocketsRead = std::map<std::string, Result<sys::SocketUnit>>;
  void load(Pool& pool, sys::ServiceUnit service, SocketsRead* read);
  void register_listeners(Pool& pool);
  void register_listeners(const std::vector<Pool*>& pools);
  void unregister_listeners(Pool& pool);
  void assess_safety(Pool& pool);
  void refresh_service(Pool& pool, Result<sys::ServiceUnit> svc);
  void refresh_sockets(Pool& pool, SocketsRead* read = nullptr);
  void follow_processes(Pool& pool);
  void forget(const std::string& unit);
  bool manages(const std::string& unit) const;
  PoolSnapshot snapshot(Pool& pool, const std::map<sys::ListenerId, sys::ListenerSnapshot>& counters, MonoTime now);
  void stop(Pool& pool, MonoTime now);
  void repair_stall(Pool& pool, const PoolSnapshot& snap, MonoTime now);
  void after_stop(Pool& pool);
  bool read_counters();
  void time_wakes();
  PoolPolicy policy_for(const std::string& unit) const;

  DaemonConfig config_;
  Deps deps_;
  StopRateLimiter limiter_;
  std::map<std::string, Pool> pools_;
  std::map<sys::ListenerId, sys::ListenerSnapshot> last_counters_;
  std::set<std::string> runtime_pins_;
  ManagerStats stats_;
  bool dirty_ = true;
  bool defer_registration_ = false;
  std::function<bool(size_t, size_t)> progress_;
};

}  // namespace idlepool::daemon
