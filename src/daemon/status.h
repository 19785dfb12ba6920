// The daemon's status model: everything known of each pool, as plain data. One model feeds the logs, sd_notify,
// idlepoolctl (table and JSON) and the Prometheus metrics.
#pragma once

#include <array>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "idlepool/core/address.h"
#include "idlepool/core/policy.h"
#include "idlepool/core/process_tracker.h"
#include "idlepool/sys/probe.h"

namespace idlepool::daemon {

// Wake latency buckets (seconds): from the unit's start to the first accept or request.
inline constexpr double kWakeLatencyBuckets[] = {0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30};
inline constexpr size_t kWakeLatencyBucketCount = sizeof(kWakeLatencyBuckets) / sizeof(double);

struct LatencyHistogram {
  std::array<uint64_t, kWakeLatencyBucketCount> buckets{};  // cumulative counts are made when exported
  uint64_t count = 0;
  double sum = 0;
  void observe(double seconds) {
    for (size_t i = 0; i < kWakeLatencyBucketCount; ++i)
      if (seconds <= kWakeLatencyBuckets[i]) {
        ++buckets[i];
        break;
      }
    ++count;
    sum += seconds;
  }
};

struct SocketStatus {
  std::string unit;        // the .socket unit
  SocketAddress address;
  bool listening = false;  // the socket unit holds it
  std::optional<sys::ListenerSnapshot> counters;  // when registered with the probe
};

// Everything known of one pool: one model for logs, sd_notify, idlepoolctl and metrics.
struct PoolStatus {
  std::string unit;
  std::string active_state;
  std::string sub_state;
  bool running = false;
  std::vector<SocketStatus> sockets;
  std::optional<PoolProcesses> processes;
  Decision decision;
  PoolPolicy policy;
  std::optional<std::string> unsafe;
  std::vector<std::string> warnings;
  bool stop_requested = false;
  std::optional<MonoTime> last_activity;
  std::map<std::string, uint64_t> stops_by_reason;
  uint64_t wakes = 0;
  std::map<std::string, uint64_t> stalls_by_action;  // "nudged", "nudge-failed", "reported" (check_stall)
  bool pinned = false;                    // by configuration or at run time
  bool can_wake = false;
  std::optional<uint64_t> memory_bytes;   // its cgroup's memory.current, while it runs
  uint64_t memory_released_bytes = 0;     // memory.current just before each of its stops, summed
  LatencyHistogram wake_latency;
};

// Daemon-wide counts, for metrics.
struct ManagerStats {
  std::map<std::string, uint64_t> deferred;  // stops that were due and waited: "rate-limit", "in-flight"
  uint64_t bus_errors = 0;                   // failed calls to systemd
  uint64_t units_read = 0;                   // service units read from systemd (discovery, starts, reloads)
};

// Stop safety of one pool, for idlepoolctl check.
struct PoolAudit {
  std::string unit;
  std::vector<std::string> problems;  // it will not be stopped (or cannot wake again) because of these
  std::vector<std::string> warnings;  // stops work, but not gracefully
};

}  // namespace idlepool::daemon
