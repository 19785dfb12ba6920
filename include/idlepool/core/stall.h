// The bookkeeping behind stall detection (core/policy.h check_stall), as a pure state machine: when connections
// began waiting with none accepted, when the pool's last worker left, when to look again, when it was last nudged.
// A stall can only begin as a pool's last worker exits (php-fpm forks for every connection that arrives while it
// has none), so the daemon looks once, stall_timeout after that exit (or after it began watching a running pool),
// and again while connections stay queued: no periodic looks.
#pragma once

#include <cstdint>
#include <optional>

#include "idlepool/core/policy.h"
#include "idlepool/core/time.h"

namespace idlepool {

class StallTracker {
 public:
  // The daemon began watching the pool, or its last worker exited at `at`: look once, stall_timeout later.
  void worker_gone(MonoTime at);
  // What an evaluation saw: the pool's accepts so far and its queue. Moves queued_since; only evaluations call it
  // (a status request or a scrape never changes stall timing).
  void observe(uint64_t accepts, uint32_t queued, bool running, MonoTime now);
  // After the evaluation: takes the baseline the first time after a worker_gone().
  void settle(bool running, const PoolPolicy& policy, MonoTime now);

  // Since when connections have been queued with none accepted, for PoolSnapshot::queued_since.
  std::optional<MonoTime> queued_since() const { return queued_since_; }
  // When the daemon should look at the pool again for this reason, given this evaluation's check.
  std::optional<MonoTime> next_look(const StallCheck& check, const PoolPolicy& policy, MonoTime now) const;

  // A stalled pool is nudged at most once a stall_timeout, and reported once a stall.
  bool nudge_due(const PoolPolicy& policy, MonoTime now) const;
  void nudged(MonoTime now) { last_nudge_ = now; }
  bool reported() const { return reported_; }
  void set_reported() { reported_ = true; }

 private:
  uint64_t accepts_seen_ = 0;
  std::optional<MonoTime> queued_since_;
  std::optional<MonoTime> workers_gone_at_;
  bool baseline_pending_ = false;
  std::optional<uint64_t> accepts_when_gone_;
  std::optional<MonoTime> look_at_;
  std::optional<MonoTime> last_nudge_;
  bool reported_ = false;
};

}  // namespace idlepool
