#include "idlepool/core/stall.h"

namespace idlepool {

void StallTracker::worker_gone(MonoTime at) {
  workers_gone_at_ = at;
  baseline_pending_ = true;
}

void StallTracker::observe(uint64_t accepts, uint32_t queued, bool running, MonoTime now) {
  if (queued == 0 || !running) {
    queued_since_.reset();
    reported_ = false;
  } else if (accepts != accepts_seen_ || !queued_since_) {
    // Queued, and the pool took one since the last look (or it is the first look): waiting since now, or since its
    // last worker left if nothing was accepted since.
    bool none_since_gone = workers_gone_at_ && accepts_when_gone_ == accepts;
    queued_since_ = none_since_gone ? *workers_gone_at_ : now;
    reported_ = false;
  }
  accepts_seen_ = accepts;
}

void StallTracker::settle(bool running, const PoolPolicy& policy, MonoTime now) {
  if (baseline_pending_) {
    baseline_pending_ = false;
    accepts_when_gone_ = accepts_seen_;
    if (running) look_at_ = now + policy.stall_timeout;  // a stopped pool cannot stall
  } else if (look_at_ && *look_at_ <= now) {
    look_at_.reset();
  }
}

std::optional<MonoTime> StallTracker::next_look(const StallCheck& check, const PoolPolicy& policy, MonoTime now) const {
  std::optional<MonoTime> look = check.check_at;
  if (check.stalled) look = last_nudge_.value_or(now) + policy.stall_timeout;  // the next nudge, if still stalled
  if (policy.stall_timeout.count() > 0 && look_at_ && (!look || *look_at_ < *look)) look = look_at_;
  return look;
}

bool StallTracker::nudge_due(const PoolPolicy& policy, MonoTime now) const {
  return !last_nudge_ || now - *last_nudge_ >= policy.stall_timeout;
}

}  // namespace idlepool
