// When to stop a pool: a pure function of what is known about the pool and the time, so that every rule is tested
// table-driven with a fake clock. No syscalls, no clocks, no files here; the daemon gathers the state and carries out
// the decision. A decision is a typed value (its rule and the figures behind it); its text is only its rendering.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "idlepool/core/time.h"

namespace idlepool {

// What to do with a pool whose only connections are idle ones the client keeps alive (nginx's upstream keepalive
// with fastcgi_keep_conn): wait until the client closes them, or stop through them (php-fpm's workers close them).
enum class KeptAlive : uint8_t { kWait, kClose };
std::string_view to_string(KeptAlive k);  // "wait", "close"
std::optional<KeptAlive> parse_kept_alive(std::string_view name);

// An idle timeout learnt from the pool's own silences (core/rhythm.h), within bounds; opt-in.
struct AdaptiveSettings {
  bool on = false;
  std::chrono::seconds min{60};    // the shortest window it may choose
  std::chrono::seconds max{3600};  // the longest
  // The window while the pool's history is too short to say (fewer than min_samples silences of at least `min`).
  std::chrono::seconds fallback{300};
  // What one cold start is worth, as time a pool is kept running: the window that costs least for the silences seen
  // (time kept running, plus this for each silence that outlasts it) is chosen.
  std::chrono::seconds cold_start_cost{300};
  uint32_t min_samples = 8;
  // Start the pool shortly before its predicted next request, when its silences are regular.
  bool prewarm = false;
};

struct PoolPolicy {
  // The fixed idle timeout; with adaptive.on, the daemon computes the window and puts it here before deciding.
  std::chrono::seconds idle_timeout{300};
  AdaptiveSettings adaptive;
  std::chrono::seconds min_uptime{30};
  // A pool whose queued connections nobody takes for this long is stalled (see check_stall); 0: never looked for.
  std::chrono::seconds stall_timeout{5};
  bool pinned = false;
  KeptAlive kept_alive = KeptAlive::kWait;
};

// What the daemon knows of one pool at one moment.
struct PoolSnapshot {
  bool running = false;                   // the service is active and its main process runs
  bool stop_in_progress = false;          // a stop job is queued or running
  MonoTime active_since{0};               // when the service last became active
  MonoTime watched_since{0};              // when this daemon started watching the pool (its sockets registered)
  std::optional<MonoTime> last_activity;  // latest accept, request, response or close on any of its sockets
  // Can it wake again? At least one triggering .socket unit is active and every one of its sockets listens.
  bool can_wake = false;
  std::string cannot_wake_reason;  // why not, when can_wake is false
  // A configuration that would not survive a stop (e.g. php-fpm listening on the socket unit's own unix path).
  std::optional<std::string> unsafe_reason;
  // In flight, across its sockets, read just now.
  uint32_t active_connections = 0;
  uint32_t queued_connections = 0;
  // Not in flight: accepted connections the client keeps alive, answered, with nothing asked since.
  uint32_t idle_connections = 0;
  uint32_t workers = 0;  // processes besides the main one (informational: busy static pools keep theirs)
  // Since when connections have been queued with none accepted (unset: nothing queued, or accepts progress).
  std::optional<MonoTime> queued_since;
  // Its recent starts come close to systemd's start limit: a stop now, and the wake after it could fail the unit and
  // its socket for good. Until when, and why.
  std::optional<MonoTime> start_limit_until;
  std::string start_limit_reason;
};

// Why a pool is stopped, or not (yet). Stable names (to_string) are what the control protocol and the metrics carry.
enum class Rule : uint8_t {
  kIdle,             // stop: idle for idle-timeout, nothing in flight
  kOperator,         // stop: asked for by idlepoolctl stop
  kNotRunning,       // never: its service is not running
  kStopInProgress,   // never: a stop job is queued or running
  kPinned,           // never: pinned by the configuration or idlepoolctl
  kCannotWake,       // never: no listening socket unit could start it again
  kUnsafe,           // never: its configuration would not survive a stop
  kProbeUnreadable,  // never: the probe cannot be read, so in-flight work cannot be ruled out
  kDryRun,           // never: dry run, the stop was reported once this idle period
  kStartLimit,       // wait: a wake now could cross systemd's start limit
  kIdleTimeout,      // wait: not idle for idle-timeout yet (a stop is planned)
  kMinUptime,        // wait: up for less than min-uptime (a stop is planned)
  kInFlight,         // wait: connections active or queued at the deadline
  kRateLimit,        // wait: the global stop rate limit
  kStopFailed,       // wait: systemd refused the last stop
  kKeptAlive,        // wait: only idle kept-alive connections left, and keepalive-connections = wait
};
inline constexpr Rule kAllRules[] = {Rule::kIdle,     Rule::kOperator,   Rule::kNotRunning,  Rule::kStopInProgress,
                                     Rule::kPinned,   Rule::kCannotWake, Rule::kUnsafe,      Rule::kProbeUnreadable,
                                     Rule::kDryRun,   Rule::kStartLimit, Rule::kIdleTimeout, Rule::kMinUptime,
                                     Rule::kInFlight, Rule::kRateLimit,  Rule::kStopFailed,  Rule::kKeptAlive};
// "idle", "operator", "not-running", "stop-in-progress", "pinned", "cannot-wake", "unsafe", "probe-unreadable",
// "dry-run", "start-limit", "idle-timeout", "min-uptime", "in-flight", "rate-limit", "stop-failed", "kept-alive".
std::string_view to_string(Rule rule);
std::optional<Rule> parse_rule(std::string_view name);

struct Decision {
  enum class Kind {
    kStop,   // stop now
    kWait,   // look again at `at`
    kNever,  // will not stop it as things are; look again when something changes
  };
  Kind kind = Kind::kNever;
  Rule rule = Rule::kNotRunning;
  std::optional<MonoTime> at;  // kWait: when to look again
  // The figures behind the rule, for its rendering (never parsed back):
  MonoTime since{0};                // kIdleTimeout: idle since; kMinUptime: up since
  std::chrono::seconds limit{0};    // kIdleTimeout: idle-timeout; kMinUptime: min-uptime
  uint32_t active = 0, queued = 0;  // kInFlight
  uint32_t idle = 0;                // kInFlight, kKeptAlive: idle kept-alive connections
  std::string detail;               // kCannotWake, kUnsafe, kStartLimit, kStopFailed, kProbeUnreadable: why

  // A stop is planned at `at` (the pool only has to stay idle).
  bool stop_planned() const {
    return kind == Kind::kWait && at && (rule == Rule::kIdleTimeout || rule == Rule::kMinUptime);
  }
};

// The decision as a sentence: "idle for 12s of 300s", "in flight: 1 active, 0 queued", "pinned".
std::string describe(const Decision& decision, MonoTime now);

// The rules, in order:
//   never: not running, a stop already in progress, pinned, cannot wake again, unsafe;
//   wait:  while a wake could hit systemd's start limit (start_limit_until);
//   wait:  until idle_timeout has passed since the last activity (or since it started, or since this daemon began
//          watching it, whichever is latest: after a restart nothing is stopped on stale data), and until it has been
//          up min_uptime;
//   wait:  while anything is in flight (active or queued connections): look again after min(idle_timeout, 5 s)...
//          the daemon also looks again at once when the pool's last worker or main process exits;
//   wait:  while idle kept-alive connections are open, if kept_alive is kWait (the client closes them: look again
//          after min(idle_timeout, 5 s)); with kClose they do not hold the stop;
//   stop:  otherwise, rule kIdle.
Decision decide(const PoolSnapshot& pool, const PoolPolicy& policy, MonoTime now);

// Decisions the daemon makes around the policy, built the same way.
Decision never_because(Rule rule, std::string detail = {});
Decision wait_because(Rule rule, MonoTime at, std::string detail = {});
Decision stop_because(Rule rule);

// A stalled pool: running, no stop in progress, connections queued for stall_timeout with none accepted (counted
// from when it came up, at the earliest), nothing accepted still open and no worker process to take them. php-fpm's
// ondemand master forks a worker only on the edge of a new connection, and skips the fork while it counts an idle
// worker; when that worker is exiting (pm.process_idle_timeout), the connection waits for the next one to arrive
// (php bug #69724), for good on a quiet site. Only a new connection repairs that: the daemon nudges.
struct StallCheck {
  bool stalled = false;
  std::optional<MonoTime> check_at;  // not (yet) stalled, but queued: when it would be
};
StallCheck check_stall(const PoolSnapshot& pool, const PoolPolicy& policy, MonoTime now);

// How often an in-flight pool is looked at again when nothing else wakes the daemon.
inline constexpr std::chrono::seconds kInFlightRecheck{5};

// A global limit on stops: `per_second` stops a second, in bursts of at most `burst`. A burst of simultaneous
// deadlines must not stop hundreds of pools at once. Pure: the caller passes the time.
class StopRateLimiter {
 public:
  StopRateLimiter(double per_second, double burst);
  // Takes a token if one is there.
  bool try_take(MonoTime now);
  // When the next token is there (now if one is).
  MonoTime next_available(MonoTime now) const;
  void reconfigure(double per_second, double burst);

 private:
  void refill(MonoTime now) const;
  double per_second_;
  double burst_;
  mutable double tokens_;
  mutable MonoTime last_;
};

std::string_view to_string(Decision::Kind kind);
std::optional<Decision::Kind> parse_decision_kind(std::string_view name);

}  // namespace idlepool
