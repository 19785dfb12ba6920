// The stop policy, table-driven with a fake clock: every rule, restart safety, pins, in-flight work, the rate limit.
#include "idlepool/core/policy.h"

#include <gtest/gtest.h>

namespace idlepool {
namespace {

using namespace std::chrono_literals;
using Kind = Decision::Kind;

MonoTime at(std::chrono::seconds s) { return std::chrono::duration_cast<MonoTime>(s); }

// A running, safe, socket-activated pool: up since t=1000s, watched since t=1000s, last active at t=2000s.
PoolSnapshot idle_pool() {
  PoolSnapshot p;
  p.running = true;
  p.active_since = at(1000s);
  p.watched_since = at(1000s);
  p.last_activity = at(2000s);
  p.can_wake = true;
  return p;
}

struct Case {
  const char* name;
  PoolSnapshot pool;
  PoolPolicy policy;
  MonoTime now;
  Kind kind;
  std::optional<MonoTime> at;
  Rule rule;
  const char* text;  // its rendering, a substring
};

PoolSnapshot with(PoolSnapshot p, void (*edit)(PoolSnapshot&)) {
  edit(p);
  return p;
}

std::vector<Case> cases() {
  PoolPolicy five_min;  // idle-timeout 300s, min-uptime 30s
  PoolPolicy pinned;
  pinned.pinned = true;
  PoolPolicy long_uptime;
  long_uptime.min_uptime = 3600s;
  PoolPolicy close_kept_alive;
  close_kept_alive.kept_alive = KeptAlive::kClose;
  return {
      {"idle long enough: stop", idle_pool(), five_min, at(2300s), Kind::kStop, {}, Rule::kIdle, "idle"},
      {"not yet idle long enough: wait for the deadline", idle_pool(), five_min, at(2299s), Kind::kWait, at(2300s),
       Rule::kIdleTimeout, "idle for 299s of 300s"},
      {"no activity since start: idle from the start",
       with(idle_pool(), [](PoolSnapshot& p) { p.last_activity.reset(); }),
       five_min,
       at(1300s),
       Kind::kStop,
       {},
       Rule::kIdle,
       "idle"},
      {"not running",
       with(idle_pool(), [](PoolSnapshot& p) { p.running = false; }),
       five_min,
       at(9000s),
       Kind::kNever,
       {},
       Rule::kNotRunning,
       "not running"},
      {"stop in progress",
       with(idle_pool(), [](PoolSnapshot& p) { p.stop_in_progress = true; }),
       five_min,
       at(9000s),
       Kind::kNever,
       {},
       Rule::kStopInProgress,
       "stop in progress"},
      {"pinned", idle_pool(), pinned, at(9000s), Kind::kNever, {}, Rule::kPinned, "pinned"},
      {"cannot wake again",
       with(idle_pool(),
            [](PoolSnapshot& p) {
              p.can_wake = false;
              p.cannot_wake_reason = "no .socket unit triggers it";
            }),
       five_min,
       at(9000s),
       Kind::kNever,
       {},
       Rule::kCannotWake,
       "cannot wake again: no .socket unit triggers it"},
      {"unsafe unix pool",
       with(idle_pool(), [](PoolSnapshot& p) { p.unsafe_reason = "listens on the unit's path"; }),
       five_min,
       at(9000s),
       Kind::kNever,
       {},
       Rule::kUnsafe,
       "unsafe: listens on the unit's path"},
      {"daemon restarted: a whole window of its own first",
       with(idle_pool(), [](PoolSnapshot& p) { p.watched_since = at(5000s); }), five_min, at(5100s), Kind::kWait,
       at(5300s), Rule::kIdleTimeout, "idle for 100s"},
      {"daemon restarted: stops after its own window",
       with(idle_pool(), [](PoolSnapshot& p) { p.watched_since = at(5000s); }),
       five_min,
       at(5300s),
       Kind::kStop,
       {},
       Rule::kIdle,
       "idle"},
      {"min-uptime not reached", with(idle_pool(), [](PoolSnapshot& p) { p.last_activity.reset(); }), long_uptime,
       at(1300s), Kind::kWait, at(4600s), Rule::kMinUptime, "min-uptime 3600s"},
      {"active connection at the deadline: look again in 5s",
       with(idle_pool(), [](PoolSnapshot& p) { p.active_connections = 1; }), five_min, at(2300s), Kind::kWait,
       at(2305s), Rule::kInFlight, "in flight: 1 active, 0 queued"},
      {"queued connection at the deadline: never stop",
       with(idle_pool(), [](PoolSnapshot& p) { p.queued_connections = 2; }), five_min, at(2400s), Kind::kWait,
       at(2405s), Rule::kInFlight, "0 active, 2 queued"},
      {"idle kept-alive connections, keepalive-connections = wait: wait for the client to close them",
       with(idle_pool(), [](PoolSnapshot& p) { p.idle_connections = 2; }), five_min, at(2300s), Kind::kWait, at(2305s),
       Rule::kKeptAlive, "2 idle kept-alive connections held by the client: waiting for it to close them"},
      {"idle kept-alive connections, keepalive-connections = close: stop through them",
       with(idle_pool(), [](PoolSnapshot& p) { p.idle_connections = 2; }),
       close_kept_alive,
       at(2300s),
       Kind::kStop,
       {},
       Rule::kIdle,
       "idle"},
      {"idle kept-alive connections do not move the idle deadline",
       with(idle_pool(), [](PoolSnapshot& p) { p.idle_connections = 1; }), close_kept_alive, at(2299s), Kind::kWait,
       at(2300s), Rule::kIdleTimeout, "idle for 299s of 300s"},
      {"a request in flight beside kept-alive ones: in flight, whatever the setting",
       with(idle_pool(),
            [](PoolSnapshot& p) {
              p.active_connections = 1;
              p.idle_connections = 3;
            }),
       close_kept_alive, at(2300s), Kind::kWait, at(2305s), Rule::kInFlight,
       "in flight: 1 active, 0 queued; 3 idle kept-alive connections held by the client"},
      {"busy workers alone do not keep it (static pools keep idle workers)",
       with(idle_pool(), [](PoolSnapshot& p) { p.workers = 5; }),
       five_min,
       at(2300s),
       Kind::kStop,
       {},
       Rule::kIdle,
       "idle"},
  };
}

TEST(Policy, Table) {
  for (const auto& c : cases()) {
    Decision d = decide(c.pool, c.policy, c.now);
    std::string text = describe(d, c.now);
    EXPECT_EQ(d.kind, c.kind) << c.name << ": " << text;
    EXPECT_EQ(d.at, c.at) << c.name;
    EXPECT_EQ(d.rule, c.rule) << c.name << ": " << text;
    EXPECT_NE(text.find(c.text), std::string::npos) << c.name << ": " << text;
  }
}

TEST(Policy, RulesHaveStableNamesBothWays) {
  for (Rule r : kAllRules) {
    ASSERT_NE(to_string(r), "?");
    EXPECT_EQ(parse_rule(to_string(r)), r) << to_string(r);
  }
  EXPECT_EQ(parse_rule("idle for 12s"), std::nullopt) << "a rendering is not a rule";
  EXPECT_EQ(parse_decision_kind("wait"), Kind::kWait);
  EXPECT_EQ(parse_decision_kind("later"), std::nullopt);
}

TEST(Policy, StopPlannedOnlyWhileWaitingForTheIdleWindow) {
  PoolPolicy p;
  EXPECT_TRUE(decide(idle_pool(), p, at(2100s)).stop_planned());
  PoolSnapshot busy = idle_pool();
  busy.active_connections = 1;
  EXPECT_FALSE(decide(busy, p, at(2400s)).stop_planned()) << "in flight: nothing is planned";
  EXPECT_FALSE(wait_because(Rule::kRateLimit, at(2400s)).stop_planned());
}

TEST(Policy, InFlightRecheckIsShorterForShortTimeouts) {
  PoolPolicy quick;
  quick.idle_timeout = 2s;
  quick.min_uptime = 0s;
  PoolSnapshot p = idle_pool();
  p.active_connections = 1;
  Decision d = decide(p, quick, at(3000s));
  EXPECT_EQ(d.kind, Kind::kWait);
  EXPECT_EQ(d.at, at(3002s));
}

TEST(StopRateLimiter, BurstThenSteadyRate) {
  StopRateLimiter limiter(2.0, 3.0);
  MonoTime t = at(100s);
  EXPECT_TRUE(limiter.try_take(t));
  EXPECT_TRUE(limiter.try_take(t));
  EXPECT_TRUE(limiter.try_take(t));
  EXPECT_FALSE(limiter.try_take(t)) << "a burst of simultaneous deadlines stops only `burst` pools";
  EXPECT_EQ(limiter.next_available(t), t + 500ms);
  EXPECT_FALSE(limiter.try_take(t + 400ms));
  EXPECT_TRUE(limiter.try_take(t + 500ms));
  EXPECT_FALSE(limiter.try_take(t + 500ms));
  // Idle for long: back to a full burst, never more.
  EXPECT_TRUE(limiter.try_take(t + 100s));
  EXPECT_TRUE(limiter.try_take(t + 100s));
  EXPECT_TRUE(limiter.try_take(t + 100s));
  EXPECT_FALSE(limiter.try_take(t + 100s));
}

TEST(StopRateLimiter, HundredsOfSimultaneousDeadlinesAreSpreadOut) {
  StopRateLimiter limiter(5.0, 5.0);
  MonoTime t = at(10s);
  int stopped_in_first_second = 0;
  for (int ms = 0; ms < 1000; ms += 10)
    for (int pool = 0; pool < 300; ++pool)
      if (limiter.try_take(t + std::chrono::milliseconds(ms))) ++stopped_in_first_second;
  EXPECT_LE(stopped_in_first_second, 10);  // burst 5 + 5 a second
  EXPECT_GE(stopped_in_first_second, 9);
}

TEST(StallCheck, QueuedWithNoAcceptNoWorkerForStallTimeout) {
  PoolPolicy policy;
  policy.stall_timeout = 5s;
  PoolSnapshot p = idle_pool();
  p.queued_connections = 1;
  p.queued_since = at(3000s);
  EXPECT_FALSE(check_stall(p, policy, at(3004s)).stalled);
  EXPECT_EQ(check_stall(p, policy, at(3004s)).check_at, at(3005s));
  EXPECT_TRUE(check_stall(p, policy, at(3005s)).stalled);

  PoolSnapshot busy = p;
  busy.active_connections = 1;  // a worker is on a request: it takes the queue when done
  EXPECT_FALSE(check_stall(busy, policy, at(3010s)).stalled);
  PoolSnapshot workers = p;
  workers.workers = 2;
  EXPECT_FALSE(check_stall(workers, policy, at(3010s)).stalled);
  PoolSnapshot nothing = p;
  nothing.queued_connections = 0;
  EXPECT_FALSE(check_stall(nothing, policy, at(3010s)).stalled);
  EXPECT_FALSE(check_stall(nothing, policy, at(3010s)).check_at.has_value());
  PoolSnapshot stopping = p;
  stopping.stop_in_progress = true;  // php-fpm does not fork while it finishes; systemd starts it again after
  EXPECT_FALSE(check_stall(stopping, policy, at(3010s)).stalled);
  PoolSnapshot down = p;
  down.running = false;  // the socket unit wakes it
  EXPECT_FALSE(check_stall(down, policy, at(3010s)).stalled);
  PoolSnapshot just_up = p;
  just_up.active_since = at(3008s);  // queued while it started: counted from when it came up
  EXPECT_FALSE(check_stall(just_up, policy, at(3010s)).stalled);
  EXPECT_TRUE(check_stall(just_up, policy, at(3013s)).stalled);
  PoolPolicy off = policy;
  off.stall_timeout = 0s;
  EXPECT_FALSE(check_stall(p, off, at(3100s)).stalled);
}

}  // namespace
}  // namespace idlepool
