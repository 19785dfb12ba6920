// The status model: everything idlepoold knows of its pools and of itself at one moment, as plain, versioned data.
// One model feeds the logs, sd_notify, idlepoolctl (its table and its JSON, through wire/status_json) and the
// Prometheus metrics (src/metrics). Pure: no adapter types, no I/O; the daemon fills it, everyone else reads it.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "idlepool/core/policy.h"
#include "idlepool/core/rhythm.h"
#include "idlepool/core/time.h"

namespace idlepool::status {

// Version 2: typed decisions ("rule"), absolute monotonic times beside the derived seconds. Bumped on any change
// that a reader of an older version would misread.
// Version 4: the idle window (fixed or learnt) and pre-warms.
inline constexpr int kVersion = 4;

// Wake latency buckets (seconds): from the unit's start to the first accept or request.
inline constexpr double kWakeLatencyBuckets[] = {0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30};
inline constexpr size_t kWakeLatencyBucketCount = std::size(kWakeLatencyBuckets);

struct LatencyHistogram {
  std::array<uint64_t, kWakeLatencyBucketCount> buckets{};  // per bucket; made cumulative when exported
  uint64_t count = 0;
  double sum = 0;
  void observe(double seconds);
};

// The slowest of what was observed in the last hour: twelve five-minute slots, each keeping its maximum (bounded,
// whatever the rate).
class SlowestLastHour {
 public:
  static constexpr auto kSlot = std::chrono::minutes(5);
  static constexpr size_t kSlots = 12;
  void observe(MonoTime at, double seconds);
  std::optional<double> at(MonoTime now) const;  // unset when nothing was observed in the hour before now

 private:
  struct Slot {
    int64_t index = -1;  // which five minutes of the monotonic clock it holds
    double max = 0;
  };
  std::array<Slot, kSlots> slots_{};
};

// Why idlepool stopped a pool.
enum class StopCause : uint8_t { kIdle, kOperator };
inline constexpr StopCause kStopCauses[] = {StopCause::kIdle, StopCause::kOperator};
std::string_view to_string(StopCause cause);  // "idle", "operator"
std::optional<StopCause> parse_stop_cause(std::string_view name);

// What idlepool did about a stalled pool (core/policy.h check_stall).
enum class StallAction : uint8_t { kNudged, kNudgeFailed, kReported };
inline constexpr StallAction kStallActions[] = {StallAction::kNudged, StallAction::kNudgeFailed,
                                                StallAction::kReported};
std::string_view to_string(StallAction action);  // "nudged", "nudge-failed", "reported"
std::optional<StallAction> parse_stall_action(std::string_view name);

// What the probe counted on one listening socket, read at one moment.
struct SocketCounters {
  uint64_t accepts = 0;
  std::optional<uint64_t> requests;  // unset where the probe's tier cannot count them
  uint32_t active = 0;               // accepted connections not yet closed, not idle: work in flight
  uint32_t backlog = 0;              // connections waiting to be accepted
  uint32_t idle = 0;                 // accepted connections the client keeps alive, idle between requests
};

struct Socket {
  std::string unit;                        // the .socket unit
  std::string address;                     // as systemd listens on it: /run/php/site.sock, 127.0.0.1:8888
  bool listening = false;                  // the socket unit holds it
  std::optional<SocketCounters> counters;  // when the probe watches it
};

struct Processes {
  uint32_t processes = 0;  // alive, main included
  uint32_t workers = 0;    // alive, besides the main process
  int32_t main_pid = 0;    // 0 if unknown
};

struct Pool {
  std::string unit;
  std::string kind;  // the service kind: "php-fpm", "generic"
  std::string active_state;
  std::string sub_state;
  bool running = false;
  std::vector<Socket> sockets;
  std::optional<Processes> processes;
  Decision decision;
  PoolPolicy policy;  // its effective policy, pins included
  bool can_wake = false;
  std::optional<std::string> unsafe;
  std::vector<std::string> warnings;
  bool stop_requested = false;
  std::optional<MonoTime> last_activity;
  std::array<uint64_t, std::size(kStopCauses)> stops{};  // by StopCause
  uint64_t wakes = 0;
  std::array<uint64_t, std::size(kStallActions)> stalls{};  // by StallAction
  std::optional<uint64_t> memory_bytes;                     // its cgroup's memory.current, while it runs
  uint64_t memory_released_bytes = 0;                       // memory.current just before each of its stops, summed
  LatencyHistogram wake_latency;
  // The wake as its visitor saw it: from the connection that reached the stopped pool's socket (or systemd's start of
  // it, if earlier) to the pool's first response; where the probe's tier counts responses.
  LatencyHistogram visitor_wake;
  std::optional<double> slowest_visitor_wake;  // in the last hour
  // The idle window its last decision used (the fixed idle-timeout, or learnt: core/rhythm.h), and its pre-warms.
  Window window;
  uint64_t prewarms = 0, prewarm_hits = 0;
  std::vector<uint32_t> visit_periods;  // the latest periods between its visits, oldest first (what pre-warms follow)
  std::optional<MonoTime> prewarm_at;   // the next pre-warm planned, while it is stopped

  uint64_t stops_total() const;
  uint64_t accepts() const;
  std::optional<uint64_t> requests() const;  // unset if any socket cannot say
  uint32_t active() const;
  uint32_t backlog() const;
  uint32_t idle() const;
};

// The kernel probe: the tier serving each counter ("fentry", "sock", "syscall", "unavailable").
struct Probe {
  std::string accepts, requests, tcp_closes, unix_closes;
};

struct ProcessConnector {
  uint64_t events = 0, lost = 0, overruns = 0, resyncs = 0, rejected = 0;
};

struct Daemon {
  std::string version;
  Probe probe;
  ProcessConnector processes;
  uint64_t bus_errors = 0;
  uint64_t bus_signals_dropped = 0;  // signals that were not PID 1's broadcasts (forged, or addressed to us)
  uint64_t deferred_rate_limit = 0;  // stops that were due and waited for the stop rate limit
  uint64_t deferred_in_flight = 0;   // ... for work in flight
  uint64_t units_read = 0;           // service units read from systemd
  // Discovery: units read of those found, while the first discovery runs (READY follows it).
  bool discovering = false;
  uint64_t discovery_done = 0, discovery_total = 0;
};

struct Model {
  int version = kVersion;
  MonoTime now{0};
  std::vector<Pool> pools;
  Daemon daemon;
  std::string summary;  // one line, as in sd_notify STATUS=
};

// Stop safety of one pool, for idlepoolctl check.
struct Audit {
  std::string unit;
  std::vector<std::string> problems;  // it will not be stopped (or cannot wake again) because of these
  std::vector<std::string> warnings;  // stops work, but not gracefully
  bool ok() const { return problems.empty(); }
};

}  // namespace idlepool::status
