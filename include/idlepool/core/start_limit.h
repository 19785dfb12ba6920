// systemd's start rate limit seen from idlepool: a unit may start StartLimitBurst= times per
// StartLimitIntervalSec=; one start more fails it, and its .socket unit with it (service-start-limit-hit), which then
// never wakes it again. A stop is a wake to come, so idlepool keeps one start in hand: it does not stop a pool whose
// recent starts leave no room for the next. Pure bookkeeping of the starts it saw.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <optional>
#include <string>

#include "idlepool/core/time.h"

namespace idlepool {

class StartLimitWindow {
 public:
  // From the unit's StartLimitBurst= and StartLimitIntervalUSec=; 0 for either: no limit (nothing is kept).
  void configure(uint32_t burst, std::chrono::microseconds interval);
  bool limited() const { return burst_ > 0 && interval_.count() > 0; }
  // A start seen at `at` (kept only where systemd limits starts, and only within the interval: bounded).
  void record(MonoTime at);
  // Until when a stop would risk the limit, with why; nothing if it would not. Does not change the window.
  struct Block {
    MonoTime until;
    std::string reason;
  };
  std::optional<Block> blocks(MonoTime now) const;
  size_t starts_in_window(MonoTime now) const;

 private:
  void prune(MonoTime now);
  uint32_t burst_ = 0;
  std::chrono::microseconds interval_{0};
  std::deque<MonoTime> starts_;
};

}  // namespace idlepool
