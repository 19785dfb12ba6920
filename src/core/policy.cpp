#include "idlepool/core/policy.h"

#include <algorithm>
#include <cmath>

namespace idlepool {
namespace {

struct RuleName {
  Rule rule;
  std::string_view name;
};
constexpr RuleName kRuleNames[] = {
    {Rule::kIdle, "idle"},
    {Rule::kOperator, "operator"},
    {Rule::kNotRunning, "not-running"},
    {Rule::kStopInProgress, "stop-in-progress"},
    {Rule::kPinned, "pinned"},
    {Rule::kCannotWake, "cannot-wake"},
    {Rule::kUnsafe, "unsafe"},
    {Rule::kProbeUnreadable, "probe-unreadable"},
    {Rule::kDryRun, "dry-run"},
    {Rule::kStartLimit, "start-limit"},
    {Rule::kIdleTimeout, "idle-timeout"},
    {Rule::kMinUptime, "min-uptime"},
    {Rule::kInFlight, "in-flight"},
    {Rule::kRateLimit, "rate-limit"},
    {Rule::kStopFailed, "stop-failed"},
    {Rule::kKeptAlive, "kept-alive"},
};
static_assert(std::size(kRuleNames) == std::size(kAllRules), "every rule has a name");

std::string seconds(std::chrono::seconds s) { return std::to_string(s.count()) + "s"; }

std::string kept_alive_text(uint32_t n) {
  return std::to_string(n) + " idle kept-alive connection" + (n == 1 ? "" : "s") + " held by the client";
}

}  // namespace

std::string_view to_string(Rule rule) {
  for (const auto& r : kRuleNames)
    if (r.rule == rule) return r.name;
  return "?";
}

std::optional<Rule> parse_rule(std::string_view name) {
  for (const auto& r : kRuleNames)
    if (r.name == name) return r.rule;
  return std::nullopt;
}

std::string_view to_string(KeptAlive k) { return k == KeptAlive::kWait ? "wait" : "close"; }

std::optional<KeptAlive> parse_kept_alive(std::string_view name) {
  for (auto k : {KeptAlive::kWait, KeptAlive::kClose})
    if (to_string(k) == name) return k;
  return std::nullopt;
}

std::string_view to_string(Decision::Kind kind) {
  switch (kind) {
    case Decision::Kind::kStop:
      return "stop";
    case Decision::Kind::kWait:
      return "wait";
    case Decision::Kind::kNever:
      return "never";
  }
  return "?";
}

std::optional<Decision::Kind> parse_decision_kind(std::string_view name) {
  for (auto k : {Decision::Kind::kStop, Decision::Kind::kWait, Decision::Kind::kNever})
    if (to_string(k) == name) return k;
  return std::nullopt;
}

std::string describe(const Decision& d, MonoTime now) {
  auto with_detail = [&](const std::string& head) { return d.detail.empty() ? head : head + ": " + d.detail; };
  switch (d.rule) {
    case Rule::kIdle:
      return "idle";
    case Rule::kOperator:
      return "operator";
    case Rule::kNotRunning:
      return "not running";
    case Rule::kStopInProgress:
      return "stop in progress";
    case Rule::kPinned:
      return "pinned";
    case Rule::kCannotWake:
      return with_detail("cannot wake again");
    case Rule::kUnsafe:
      return with_detail("unsafe");
    case Rule::kProbeUnreadable:
      return with_detail("probe unreadable");
    case Rule::kDryRun:
      return "dry run: would stop (idle for " + whole_seconds(now - d.since) + ")";
    case Rule::kStartLimit:
      return with_detail("start limit");
    case Rule::kIdleTimeout:
      return "idle for " + whole_seconds(now - d.since) + " of " + seconds(d.limit);
    case Rule::kMinUptime:
      return "up for " + whole_seconds(now - d.since) + " of min-uptime " + seconds(d.limit);
    case Rule::kInFlight:
      return "in flight: " + std::to_string(d.active) + " active, " + std::to_string(d.queued) + " queued" +
             (d.idle ? "; " + kept_alive_text(d.idle) : "");
    case Rule::kKeptAlive:
      return kept_alive_text(d.idle) + ": waiting for it to close them (keepalive-connections = wait)";
    case Rule::kRateLimit:
      return "stop rate limit";
    case Rule::kStopFailed:
      return with_detail("stop failed");
  }
  return std::string(to_string(d.rule));
}

Decision never_because(Rule rule, std::string detail) {
  Decision d;
  d.kind = Decision::Kind::kNever;
  d.rule = rule;
  d.detail = std::move(detail);
  return d;
}

Decision wait_because(Rule rule, MonoTime at, std::string detail) {
  Decision d;
  d.kind = Decision::Kind::kWait;
  d.rule = rule;
  d.at = at;
  d.detail = std::move(detail);
  return d;
}

Decision stop_because(Rule rule) {
  Decision d;
  d.kind = Decision::Kind::kStop;
  d.rule = rule;
  return d;
}

Decision decide(const PoolSnapshot& pool, const PoolPolicy& policy, MonoTime now) {
  if (!pool.running) return never_because(Rule::kNotRunning);
  if (pool.stop_in_progress) return never_because(Rule::kStopInProgress);
  if (policy.pinned) return never_because(Rule::kPinned);
  if (!pool.can_wake) return never_because(Rule::kCannotWake, pool.cannot_wake_reason);
  if (pool.unsafe_reason) return never_because(Rule::kUnsafe, *pool.unsafe_reason);
  if (pool.start_limit_until && now < *pool.start_limit_until)
    return wait_because(Rule::kStartLimit, *pool.start_limit_until, pool.start_limit_reason);

  MonoTime idle_from = std::max(pool.active_since, pool.watched_since);
  if (pool.last_activity) idle_from = std::max(idle_from, *pool.last_activity);
  MonoTime idle_deadline = idle_from + policy.idle_timeout;
  MonoTime uptime_deadline = pool.active_since + policy.min_uptime;
  if (now < idle_deadline || now < uptime_deadline) {
    bool idle_later = idle_deadline >= uptime_deadline;
    Decision d =
        wait_because(idle_later ? Rule::kIdleTimeout : Rule::kMinUptime, std::max(idle_deadline, uptime_deadline));
    d.since = idle_later ? idle_from : pool.active_since;
    d.limit = idle_later ? policy.idle_timeout : policy.min_uptime;
    return d;
  }
  MonoTime recheck = now + std::min<std::chrono::seconds>(policy.idle_timeout, kInFlightRecheck);
  if (pool.active_connections > 0 || pool.queued_connections > 0) {
    Decision d = wait_because(Rule::kInFlight, recheck);
    d.active = pool.active_connections;
    d.queued = pool.queued_connections;
    d.idle = pool.idle_connections;
    return d;
  }
  if (pool.idle_connections > 0 && policy.kept_alive == KeptAlive::kWait) {
    Decision d = wait_because(Rule::kKeptAlive, recheck);
    d.idle = pool.idle_connections;
    return d;
  }
  Decision d = stop_because(Rule::kIdle);
  d.since = idle_from;
  return d;
}

StallCheck check_stall(const PoolSnapshot& pool, const PoolPolicy& policy, MonoTime now) {
  if (policy.stall_timeout.count() == 0 || !pool.running || pool.stop_in_progress || !pool.queued_since ||
      pool.queued_connections == 0)
    return {};
  MonoTime due = std::max(*pool.queued_since, pool.active_since) + policy.stall_timeout;
  if (now < due) return StallCheck{false, due};
  // Work in progress takes the queue when it is done: not a stall.
  if (pool.active_connections > 0 || pool.workers > 0) return {};
  return StallCheck{true, std::nullopt};
}

StopRateLimiter::StopRateLimiter(double per_second, double burst)
    : per_second_(per_second), burst_(std::max(1.0, burst)), tokens_(burst_), last_(0) {}

void StopRateLimiter::reconfigure(double per_second, double burst) {
  per_second_ = per_second;
  burst_ = std::max(1.0, burst);
  tokens_ = std::min(tokens_, burst_);
}

void StopRateLimiter::refill(MonoTime now) const {
  if (now <= last_) return;
  double elapsed = std::chrono::duration<double>(now - last_).count();
  tokens_ = std::min(burst_, tokens_ + elapsed * per_second_);
  last_ = now;
}

bool StopRateLimiter::try_take(MonoTime now) {
  refill(now);
  if (tokens_ < 1.0) return false;
  tokens_ -= 1.0;
  return true;
}

MonoTime StopRateLimiter::next_available(MonoTime now) const {
  refill(now);
  if (tokens_ >= 1.0 || per_second_ <= 0) return now;
  double wait = (1.0 - tokens_) / per_second_;
  return now + std::chrono::nanoseconds(static_cast<int64_t>(std::ceil(wait * 1e9)));
}

}  // namespace idlepool
