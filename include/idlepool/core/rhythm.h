// A pool's rhythm: the silences between its requests, and the idle window and pre-warm they call for. Pure: the
// daemon feeds it the probe's readings and the pool's starts and stops, the simulator feeds it a recorded trace,
// and both get the same answers (the same code decides). No clock, no file: the state file's text is wire/.
//
// What is learnt is a histogram of silences (in octaves: bin i holds silences from 2^i s to 2^(i+1) s) of at least
// the adaptive minimum, weighted towards recent ones (every count halves when there are kMaxSamples), and the last
// few silences that ended with a wake, measured exactly (for pre-warming). A silence the daemon sees only through
// readings is binned by looking at the pool at each octave's edge while it is silent (next_look): a few looks per
// silence, none beyond the window (a silence that outlasts the window ends with a wake, whose time is exact).
//
// The window chosen is the one that costs least over the silences seen, where a silence of length g costs g under
// a window that covers it, and the window plus `cold_start_cost` under one that does not (the pool ran for the
// window, was stopped, and the next visitor paid a cold start). That is the rule "Serverless in the Wild" (Shahrad et
// al., ATC 2020) approximates with percentiles, made exact for the histogram and for a stated price of a cold start;
// with the same price for every pool it is the per-pool choice no single fixed timeout can beat on both cold starts
// and running time together (see README, "An idle window per pool").
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "idlepool/core/policy.h"
#include "idlepool/core/time.h"

namespace idlepool {

inline constexpr size_t kGapBins = 18;  // 1 s .. 2^17 s (36 h); the last bin holds everything longer
inline constexpr uint32_t kMaxSamples = 1024;

struct GapHistogram {
  std::array<uint16_t, kGapBins> counts{};

  static std::chrono::seconds floor_of(size_t bin) { return std::chrono::seconds(int64_t{1} << bin); }
  static size_t bin_of(MonoTime gap);
  void add(MonoTime gap);  // halves every count first when the total reached kMaxSamples
  uint32_t total() const;
  // Samples in bin `from` and above.
  uint32_t total_from(size_t from) const;
  // The upper edge of the bin the q-quantile (0 < q <= 1) of the samples from bin `from` falls in; unset if none.
  std::optional<std::chrono::seconds> quantile(double q, size_t from) const;
};

// The last silences that ended with a wake, exact, in seconds (a ring).
inline constexpr size_t kRecentGaps = 8;
struct RecentGaps {
  std::array<uint32_t, kRecentGaps> seconds{};
  uint8_t count = 0;  // valid entries, up to kRecentGaps
  uint8_t next = 0;   // where the next one goes
  void add(MonoTime gap);
  std::vector<uint32_t> in_order() const;  // oldest first
};

enum class WindowReason : uint8_t {
  kFixed,     // adaptive is off: the fixed idle-timeout
  kFallback,  // too few silences yet: adaptive-fallback
  kLearnt,    // the least costly window for the silences seen
  kPrewarm,   // pre-warmed and waiting for the predicted request: held until the prediction's end
};
std::string_view to_string(WindowReason r);  // "fixed", "fallback", "learnt", "prewarm"
std::optional<WindowReason> parse_window_reason(std::string_view name);

struct Window {
  std::chrono::seconds value{0};
  WindowReason reason = WindowReason::kFixed;
  uint32_t samples = 0;  // silences of at least adaptive-min in the histogram
  std::optional<std::chrono::seconds> p50, p90, p99;
  // Of the silences seen, the share the window would have met cold (0..1).
  double cold_share = 0;
};

// The window as a sentence: "128s (learnt from 23 silences: median 128s, p90 512s, p99 1024s; 10% outlast it)".
std::string describe(const Window& window);

// The window the settings and the histogram call for (not the pre-warm hold: Rhythm::window).
Window choose_window(const GapHistogram& histogram, const PoolPolicy& policy);

// When to start a stopped pool before its predicted request, and until when to hold it for that request.
struct PrewarmPlan {
  MonoTime start{0};
  MonoTime hold_until{0};
};
// A pre-warm is planned from the periods between the pool's visits (a visit begins with its first request after a
// stop: a wake, or the first use after a pre-warm): a cron's period, whatever the wakes cost (a silence is the period
// less the previous visit's wake and work, and a pre-warmed visit has no wake). Regular periods: at least
// kPrewarmSamples, their spread (longest minus shortest) at most a quarter of their median. The start comes a margin
// (a tenth of the median, at least 2 s) before the shortest after `visit` (the latest visit's start), the hold lasts
// a margin past the longest. Unset when not regular, or when the pool runs until the start anyway (stopped at
// `stop`, its latest activity plus its window).
inline constexpr uint8_t kPrewarmSamples = 5;
std::optional<PrewarmPlan> plan_prewarm(const RecentGaps& periods, MonoTime visit, MonoTime stop);

// One pool's learning: what persists (histogram, recent) and the silence being measured.
class Rhythm {
 public:
  GapHistogram histogram;  // its silences
  RecentGaps recent;       // the latest periods between its visits (what pre-warms are planned from)

  // A reading of the pool while it runs: its latest activity as the probe dates it. A silence that ended since the
  // last reading is binned from when it was last seen silent (the lower bound: the looks come at the bins' edges).
  // Silences shorter than `min` are not kept.
  void observe(MonoTime now, std::optional<MonoTime> last_activity, std::chrono::seconds min);
  // The pool stopped (readings are ignored until it is used again).
  void stopped();
  // It was started by someone else (or first seen): the next reading begins a silence, nothing is measured across.
  void began_anew() {
    anchor_.reset();
    visit_.reset();
    stopped_ = false;
    waiting_ = false;
    prewarm_.reset();
  }
  // The pool's first request after a stop came at `at` (its first use after a pre-warm): the silence ends there,
  // exactly, and a visit begins.
  void used_again(MonoTime at, std::chrono::seconds min);
  // A connection started the stopped pool at `at`: the silence ends there, exactly, and that connection waits in the
  // socket's queue while the pool starts, so the first activity the probe sees after it is the same visit (a start
  // longer than `min` is no silence of its visitors).
  void woken(MonoTime at, std::chrono::seconds min) {
    used_again(at, min);
    waiting_ = true;
  }
  // When to look at the silent pool again to bin its silence: the next edge (`min`, then each octave above it)
  // short of the window; unset when stopped or there is none.
  std::optional<MonoTime> next_look(std::chrono::seconds window, std::chrono::seconds min) const;

  // The window for the pool now: the pre-warm hold while a pre-warm waits for its request, else choose_window.
  Window window(const PoolPolicy& policy, MonoTime active_since) const;
  // The pre-warm that would come next for the stopped pool (policy.adaptive.prewarm asked for).
  std::optional<PrewarmPlan> next_prewarm(const PoolPolicy& policy) const;
  // A pre-warm began (the daemon started the pool) / ended: hit when a request came before its hold ended.
  void prewarm_started(const PrewarmPlan& plan) {
    prewarm_ = plan;
    prewarmed_for_ = anchor_;
  }
  void prewarm_ended() { prewarm_.reset(); }
  const std::optional<PrewarmPlan>& prewarm() const { return prewarm_; }
  bool is_stopped() const { return stopped_; }
  std::optional<MonoTime> anchor() const { return anchor_; }

 private:
  std::optional<MonoTime> anchor_;  // the latest activity seen: where the current silence began
  std::optional<MonoTime> visit_;   // the start of the latest visit (its first request after a stop)
  MonoTime silent_until_{0};        // the latest reading that saw the pool still silent since anchor_
  bool stopped_ = false;
  bool waiting_ = false;  // woken: the waking visit's first activity is still to be seen
  std::optional<PrewarmPlan> prewarm_;
  std::optional<MonoTime> prewarmed_for_;  // the silence (its anchor) a pre-warm was made for: one per silence
};

}  // namespace idlepool
