#include "idlepool/core/rhythm.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <vector>

namespace idlepool {
namespace {

using std::chrono::seconds;

double secs(MonoTime t) { return to_seconds(t); }

seconds clamp_to(seconds s, const AdaptiveSettings& a) { return std::clamp(s, a.min, std::max(a.min, a.max)); }

// A silence's typical length in a bin, for the cost of covering it: the geometric middle of the part of the bin at or
// above `min` (no silence below `min` is kept).
double typical(size_t bin, double min) {
  double lo = std::max(static_cast<double>(GapHistogram::floor_of(bin).count()), min);
  double hi = static_cast<double>(GapHistogram::floor_of(bin).count()) * 2;
  return lo >= hi ? lo : std::sqrt(lo * hi);
}

}  // namespace

size_t GapHistogram::bin_of(MonoTime gap) {
  auto whole = std::chrono::duration_cast<seconds>(gap).count();
  if (whole < 2) return 0;
  return std::min<size_t>(static_cast<size_t>(std::bit_width(static_cast<uint64_t>(whole))) - 1, kGapBins - 1);
}

void GapHistogram::add(MonoTime gap) {
  if (total() >= kMaxSamples)
    for (auto& c : counts) c = static_cast<uint16_t>(c / 2);
  auto& c = counts[bin_of(gap)];
  if (c < UINT16_MAX) ++c;
}

uint32_t GapHistogram::total() const { return total_from(0); }

uint32_t GapHistogram::total_from(size_t from) const {
  uint32_t n = 0;
  for (size_t b = from; b < kGapBins; ++b) n += counts[b];
  return n;
}

std::optional<seconds> GapHistogram::quantile(double q, size_t from) const {
  uint32_t n = total_from(from);
  if (n == 0) return std::nullopt;
  auto rank = static_cast<uint32_t>(std::ceil(q * n));
  uint32_t seen = 0;
  for (size_t b = from; b < kGapBins; ++b) {
    seen += counts[b];
    if (seen >= std::max<uint32_t>(rank, 1)) return floor_of(b) * 2;
  }
  return floor_of(kGapBins - 1) * 2;
}

void RecentGaps::add(MonoTime gap) {
  double s = std::clamp(secs(gap), 0.0, static_cast<double>(UINT32_MAX));
  seconds[next] = static_cast<uint32_t>(std::lround(s));
  next = static_cast<uint8_t>((next + 1) % kRecentGaps);
  if (count < kRecentGaps) ++count;
}

std::string_view to_string(WindowReason r) {
  switch (r) {
    case WindowReason::kFixed:
      return "fixed";
    case WindowReason::kFallback:
      return "fallback";
    case WindowReason::kLearnt:
      return "learnt";
    case WindowReason::kPrewarm:
      return "prewarm";
  }
  return "?";
}

std::optional<WindowReason> parse_window_reason(std::string_view name) {
  for (auto r : {WindowReason::kFixed, WindowReason::kFallback, WindowReason::kLearnt, WindowReason::kPrewarm})
    if (to_string(r) == name) return r;
  return std::nullopt;
}

std::string describe(const Window& w) {
  auto secs_text = [](std::optional<seconds> s) { return s ? std::to_string(s->count()) + "s" : std::string("-"); };
  std::string text = std::to_string(w.value.count()) + "s";
  switch (w.reason) {
    case WindowReason::kFixed:
      return text + " (fixed)";
    case WindowReason::kFallback:
      return text + " (adaptive-fallback: " + std::to_string(w.samples) + " silence" + (w.samples == 1 ? "" : "s") +
             " of at least adaptive-min seen, too few yet)";
    case WindowReason::kPrewarm:
      return text + " (pre-warmed: held up for its predicted request)";
    case WindowReason::kLearnt:
      break;
  }
  return text + " (learnt from " + std::to_string(w.samples) + " silences: median " + secs_text(w.p50) + ", p90 " +
         secs_text(w.p90) + ", p99 " + secs_text(w.p99) + "; " +
         std::to_string(static_cast<int>(std::lround(w.cold_share * 100))) + "% outlast it)";
}

Window choose_window(const GapHistogram& histogram, const PoolPolicy& policy) {
  Window w;
  const AdaptiveSettings& a = policy.adaptive;
  if (!a.on) {
    w.value = policy.idle_timeout;
    return w;
  }
  size_t from = GapHistogram::bin_of(a.min);
  w.samples = histogram.total_from(from);
  w.p50 = histogram.quantile(0.5, from);
  w.p90 = histogram.quantile(0.9, from);
  w.p99 = histogram.quantile(0.99, from);
  if (w.samples < std::max<uint32_t>(a.min_samples, 1)) {
    w.value = clamp_to(a.fallback, a);
    w.reason = WindowReason::kFallback;
    return w;
  }
  // Candidates: the bounds and every octave edge between them.
  std::vector<seconds> candidates{a.min};
  for (size_t b = 0; b < kGapBins; ++b)
    if (GapHistogram::floor_of(b) > a.min && GapHistogram::floor_of(b) < a.max)
      candidates.push_back(GapHistogram::floor_of(b));
  if (a.max > a.min) candidates.push_back(a.max);
  const double min = static_cast<double>(a.min.count());
  const double price = static_cast<double>(a.cold_start_cost.count());
  double best_cost = 0;
  uint32_t best_cold = 0;
  for (seconds c : candidates) {
    const double window = static_cast<double>(c.count());
    double cost = 0;
    uint32_t cold = 0;
    for (size_t b = from; b < kGapBins; ++b) {
      if (histogram.counts[b] == 0) continue;
      double g = typical(b, min);
      bool covered = b + 1 < kGapBins && g <= window;
      cost += histogram.counts[b] * (covered ? g : window + price);
      if (!covered) cold += histogram.counts[b];
    }
    if (c == candidates.front() || cost < best_cost) {
      best_cost = cost;
      best_cold = cold;
      w.value = c;
    }
  }
  w.reason = WindowReason::kLearnt;
  w.cold_share = static_cast<double>(best_cold) / w.samples;
  return w;
}

std::vector<uint32_t> RecentGaps::in_order() const {
  std::vector<uint32_t> out;
  for (size_t i = 0; i < count; ++i) out.push_back(seconds[(next + kRecentGaps - count + i) % kRecentGaps]);
  return out;
}

std::optional<PrewarmPlan> plan_prewarm(const RecentGaps& periods, MonoTime visit, MonoTime stop) {
  if (periods.count < kPrewarmSamples) return std::nullopt;
  std::vector<uint32_t> gaps(periods.seconds.begin(), periods.seconds.begin() + periods.count);
  std::sort(gaps.begin(), gaps.end());
  const double shortest = gaps.front(), longest = gaps.back(), median = gaps[gaps.size() / 2];
  if (longest - shortest > median / 4) return std::nullopt;
  const double margin = std::max(median / 10, 2.0);
  auto at = [visit](double offset) {
    return visit + std::chrono::duration_cast<MonoTime>(std::chrono::duration<double>(offset));
  };
  PrewarmPlan plan{at(shortest - margin), at(longest + margin)};
  if (plan.start <= stop) return std::nullopt;  // it runs until then anyway
  return plan;
}

void Rhythm::observe(MonoTime now, std::optional<MonoTime> last_activity, seconds min) {
  if (stopped_ || !last_activity) return;
  if (!anchor_) {
    anchor_ = last_activity;
    silent_until_ = std::max(now, *last_activity);
    return;
  }
  // Older than what is known (a wake dated the silence's end before the probe saw its request): nothing new.
  if (*last_activity <= *anchor_) {
    silent_until_ = std::max(silent_until_, now);
    return;
  }
  // The waking connection accepted at last: the same visit as the wake, however long the start took.
  if (waiting_) {
    waiting_ = false;
    anchor_ = last_activity;
    silent_until_ = std::max(now, *last_activity);
    return;
  }
  // The silence that began at anchor_ ended after silent_until_ (seen silent then) and by last_activity: the looks
  // come at the bins' edges, so the lower bound falls in its bin.
  MonoTime lower = silent_until_ - *anchor_;
  if (lower >= min) histogram.add(lower);
  anchor_ = last_activity;
  silent_until_ = std::max(now, *last_activity);
}

void Rhythm::stopped() { stopped_ = true; }

void Rhythm::used_again(MonoTime at, seconds min) {
  if (anchor_ && at > *anchor_ && at - *anchor_ >= min) histogram.add(at - *anchor_);
  if (visit_ && at > *visit_ && at - *visit_ >= min) recent.add(at - *visit_);
  visit_ = at;
  anchor_ = at;
  silent_until_ = at;
  stopped_ = false;
  waiting_ = false;
}

std::optional<MonoTime> Rhythm::next_look(seconds window, seconds min) const {
  if (stopped_ || !anchor_) return std::nullopt;
  MonoTime elapsed = silent_until_ - *anchor_;
  MonoTime edge = min;
  if (elapsed >= edge) {
    size_t b = GapHistogram::bin_of(elapsed) + 1;
    if (b >= kGapBins) return std::nullopt;
    edge = GapHistogram::floor_of(b);
  }
  if (edge >= window) return std::nullopt;
  return *anchor_ + edge;
}

Window Rhythm::window(const PoolPolicy& policy, MonoTime active_since) const {
  Window w = choose_window(histogram, policy);
  if (prewarm_ && policy.adaptive.on) {
    auto hold = std::chrono::ceil<seconds>(prewarm_->hold_until - active_since);
    w.value = std::max(hold, seconds(1));
    w.reason = WindowReason::kPrewarm;
  }
  return w;
}

std::optional<PrewarmPlan> Rhythm::next_prewarm(const PoolPolicy& policy) const {
  if (!policy.adaptive.on || !policy.adaptive.prewarm || !stopped_ || !anchor_ || prewarm_) return std::nullopt;
  if (prewarmed_for_ == anchor_ || !visit_) return std::nullopt;
  return plan_prewarm(recent, *visit_, *anchor_ + choose_window(histogram, policy).value);
}

}  // namespace idlepool
