#include "idlepool/core/status.h"

namespace idlepool::status {

void LatencyHistogram::observe(double seconds) {
  for (size_t i = 0; i < kWakeLatencyBucketCount; ++i)
    if (seconds <= kWakeLatencyBuckets[i]) {
      ++buckets[i];
      break;
    }
  ++count;
  sum += seconds;
}

void SlowestLastHour::observe(MonoTime at, double seconds) {
  const int64_t index = std::chrono::floor<std::chrono::minutes>(at).count() / kSlot.count();
  Slot& slot = slots_[static_cast<size_t>(index) % kSlots];
  if (slot.index != index) slot = Slot{index, seconds};
  slot.max = std::max(slot.max, seconds);
}

std::optional<double> SlowestLastHour::at(MonoTime now) const {
  const int64_t index = std::chrono::floor<std::chrono::minutes>(now).count() / kSlot.count();
  std::optional<double> out;
  for (const auto& slot : slots_)
    if (slot.index >= 0 && slot.index > index - static_cast<int64_t>(kSlots) && slot.index <= index)
      out = std::max(out.value_or(0), slot.max);
  return out;
}

std::string_view to_string(StopCause cause) {
  switch (cause) {
    case StopCause::kIdle:
      return "idle";
    case StopCause::kOperator:
      return "operator";
  }
  return "?";
}

std::optional<StopCause> parse_stop_cause(std::string_view name) {
  for (auto c : kStopCauses)
    if (to_string(c) == name) return c;
  return std::nullopt;
}

std::string_view to_string(StallAction action) {
  switch (action) {
    case StallAction::kNudged:
      return "nudged";
    case StallAction::kNudgeFailed:
      return "nudge-failed";
    case StallAction::kReported:
      return "reported";
  }
  return "?";
}

std::optional<StallAction> parse_stall_action(std::string_view name) {
  for (auto a : kStallActions)
    if (to_string(a) == name) return a;
  return std::nullopt;
}

uint64_t Pool::stops_total() const {
  uint64_t n = 0;
  for (auto s : stops) n += s;
  return n;
}

uint64_t Pool::accepts() const {
  uint64_t n = 0;
  for (const auto& s : sockets)
    if (s.counters) n += s.counters->accepts;
  return n;
}

std::optional<uint64_t> Pool::requests() const {
  if (sockets.empty()) return std::nullopt;
  uint64_t n = 0;
  for (const auto& s : sockets) {
    if (!s.counters || !s.counters->requests) return std::nullopt;
    n += *s.counters->requests;
  }
  return n;
}

uint32_t Pool::active() const {
  uint32_t n = 0;
  for (const auto& s : sockets)
    if (s.counters) n += s.counters->active;
  return n;
}

uint32_t Pool::idle() const {
  uint32_t n = 0;
  for (const auto& s : sockets)
    if (s.counters) n += s.counters->idle;
  return n;
}

uint32_t Pool::backlog() const {
  uint32_t n = 0;
  for (const auto& s : sockets)
    if (s.counters) n += s.counters->backlog;
  return n;
}

}  // namespace idlepool::status
