#include "idlepool/core/policy.h"

#include <algorithm>
#include <cmath>

namespace idlepool {
namespace {

Decision never(std::string why) { return Decision{Decision::Kind::kNever, std::nullopt, std::move(why)}; }
Decision wait_until(MonoTime at, std::string why) { return Decision{Decision::Kind::kWait, at, std::move(why)}; }

std::string seconds(MonoTime d) {
  auto s = std::chrono::duration_cast<std::chrono::seconds>(d).count();
  return std::to_string(s) + "s";
}

}  // namespace

std::string to_string(Decision::Kind kind) {
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

Decision decide(const PoolSnapshot& pool, const PoolPolicy& policy, MonoTime now) {
  if (!pool.running) return never("not running");
  if (pool.stop_in_progress) return never("stop in progress");
  if (policy.pinned) return never("pinned");
  if (!pool.can_wake) return never("cannot wake again: " + pool.cannot_wake_reason);
  if (pool.unsafe_reason) return never("unsafe: " + *pool.unsafe_reason);
  if (pool.start_limit_until && now < *pool.start_limit_until)
    return wait_until(*pool.start_limit_until, "start limit: " + pool.start_limit_reason);

  MonoTime idle_from = std::max(pool.active_since, pool.watched_since);
  if (pool.last_activity) idle_from = std::max(idle_from, *pool.last_activity);
  MonoTime idle_deadline = idle_from + policy.idle_timeout;
  MonoTime uptime_deadline = pool.active_since + policy.min_uptime;
  if (now < idle_deadline || now < uptime_deadline) {
    bool idle_later = idle_deadline >= uptime_deadline;
    MonoTime at = std::max(idle_deadline, uptime_deadline);
    if (idle_later)
      return wait_until(at, "idle for " + seconds(now - idle_from) + " of " + seconds(policy.idle_timeout));
    return wait_until(at, "up for " + seconds(now - pool.active_since) + " of min-uptime " + seconds(policy.min_uptime));
  }
  if (pool.active_connections > 0 || pool.queued_connections > 0) {
    MonoTime recheck = std::min<MonoTime>(policy.idle_timeout, kInFlightRecheck);
    return wait_until(now + recheck, "in flight: " + std::to_string(pool.active_connections) + " active, " +
                                         std::to_string(pool.queued_connections) + " queued");
  }
  return Decision{Decision::Kind::kStop, std::nullopt, "idle"};
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
