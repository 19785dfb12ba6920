#include "idlepool/core/start_limit.h"

namespace idlepool {

void StartLimitWindow::configure(uint32_t burst, std::chrono::microseconds interval) {
  burst_ = burst;
  interval_ = interval;
  if (!limited()) starts_.clear();
}

void StartLimitWindow::prune(MonoTime now) {
  while (!starts_.empty() && now - starts_.front() >= interval_) starts_.pop_front();
}

void StartLimitWindow::record(MonoTime at) {
  if (!limited()) return;
  prune(at);
  starts_.push_back(at);
  while (starts_.size() > burst_) starts_.pop_front();  // never more than systemd itself would allow
}

size_t StartLimitWindow::starts_in_window(MonoTime now) const {
  size_t n = 0;
  for (MonoTime t : starts_)
    if (now - t < interval_) ++n;
  return n;
}

std::optional<StartLimitWindow::Block> StartLimitWindow::blocks(MonoTime now) const {
  if (!limited()) return std::nullopt;
  size_t n = starts_in_window(now);
  if (n == 0 || n + 1 < burst_) return std::nullopt;
  // The oldest start still in the window leaves it first.
  MonoTime oldest{0};
  for (MonoTime t : starts_)
    if (now - t < interval_) {
      oldest = t;
      break;
    }
  auto secs = std::chrono::duration_cast<std::chrono::seconds>(interval_).count();
  return Block{oldest + interval_, std::to_string(n) + " starts in the last " + std::to_string(secs) +
                                       "s; systemd allows " + std::to_string(burst_) +
                                       " (StartLimitBurst), and a failed wake would fail its socket for good"};
}

}  // namespace idlepool
