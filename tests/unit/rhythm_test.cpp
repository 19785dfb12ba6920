// The adaptive idle window: the histogram of silences, the window it calls for, how readings bin a silence, the
// pre-warm plan, and the simulator on traces small enough to count by hand.
#include "idlepool/core/rhythm.h"

#include <gtest/gtest.h>

#include "idlepool/core/simulate.h"
#include "idlepool/core/status.h"

namespace idlepool {
namespace {

using namespace std::chrono_literals;

MonoTime at(double s) { return std::chrono::duration_cast<MonoTime>(std::chrono::duration<double>(s)); }

PoolPolicy adaptive(std::chrono::seconds min = 60s, std::chrono::seconds max = 3600s) {
  PoolPolicy p;
  p.adaptive.on = true;
  p.adaptive.min = min;
  p.adaptive.max = max;
  p.adaptive.fallback = 300s;
  p.adaptive.cold_start_cost = 300s;
  p.adaptive.min_samples = 4;
  return p;
}

GapHistogram with(std::initializer_list<std::pair<double, int>> silences) {
  GapHistogram h;
  for (auto [s, n] : silences)
    for (int i = 0; i < n; ++i) h.add(at(s));
  return h;
}

TEST(GapHistogram, BinsAreOctavesOfSeconds) {
  EXPECT_EQ(GapHistogram::bin_of(at(0.5)), 0u);
  EXPECT_EQ(GapHistogram::bin_of(at(1)), 0u);
  EXPECT_EQ(GapHistogram::bin_of(at(2)), 1u);
  EXPECT_EQ(GapHistogram::bin_of(at(3.9)), 1u);
  EXPECT_EQ(GapHistogram::bin_of(at(63.9)), 5u);
  EXPECT_EQ(GapHistogram::bin_of(at(64)), 6u);
  EXPECT_EQ(GapHistogram::bin_of(at(3600)), 11u);
  EXPECT_EQ(GapHistogram::bin_of(at(86400.0 * 365)), kGapBins - 1);
  EXPECT_EQ(GapHistogram::floor_of(6), 64s);
}

TEST(GapHistogram, OlderSilencesWeighLessOnceItIsFull) {
  GapHistogram h = with({{100, static_cast<int>(kMaxSamples)}});
  EXPECT_EQ(h.total(), kMaxSamples);
  h.add(at(5000));  // halves first: 512 of the old, 1 new
  EXPECT_EQ(h.counts[6], kMaxSamples / 2);
  EXPECT_EQ(h.counts[12], 1u);
}

TEST(GapHistogram, QuantilesAreBinUpperEdges) {
  GapHistogram h = with({{100, 50}, {1000, 40}, {20000, 10}});
  EXPECT_EQ(h.quantile(0.5, 0), 128s);
  EXPECT_EQ(h.quantile(0.9, 0), 1024s);
  EXPECT_EQ(h.quantile(0.99, 0), 32768s);
  EXPECT_EQ(h.quantile(0.5, 9), 1024s);  // from bin 9 on: 40 and 10
  EXPECT_FALSE(GapHistogram{}.quantile(0.5, 0));
}

TEST(ChooseWindow, OffIsTheFixedTimeout) {
  PoolPolicy p;
  p.idle_timeout = 123s;
  Window w = choose_window(with({{100, 50}}), p);
  EXPECT_EQ(w.value, 123s);
  EXPECT_EQ(w.reason, WindowReason::kFixed);
}

TEST(ChooseWindow, TooFewSilencesFallBackWithinTheBounds) {
  PoolPolicy p = adaptive();
  Window w = choose_window(with({{100, 3}, {10, 50}}), p);  // silences under adaptive-min do not count
  EXPECT_EQ(w.reason, WindowReason::kFallback);
  EXPECT_EQ(w.samples, 3u);
  EXPECT_EQ(w.value, 300s);
  p.adaptive.max = 120s;
  EXPECT_EQ(choose_window(with({}), p).value, 120s);
}

TEST(ChooseWindow, CoversSilencesShorterThanTheirCost) {
  // Silences of about 100 s cost ~90 s each when covered, 128+300 s when not: the window covers them.
  Window w = choose_window(with({{100, 20}}), adaptive());
  EXPECT_EQ(w.reason, WindowReason::kLearnt);
  EXPECT_EQ(w.value, 128s);
  EXPECT_EQ(w.cold_share, 0);
  EXPECT_EQ(w.p50, 128s);
  // With a rare long silence the window still covers the short ones, and the long one goes cold.
  w = choose_window(with({{100, 18}, {20000, 2}}), adaptive());
  EXPECT_EQ(w.value, 128s);
  EXPECT_DOUBLE_EQ(w.cold_share, 0.1);
}

TEST(ChooseWindow, SilencesLongerThanTheBoundsGetTheShortestWindow) {
  Window w = choose_window(with({{3 * 3600, 20}}), adaptive());
  EXPECT_EQ(w.value, 60s);
  EXPECT_EQ(w.cold_share, 1);
}

TEST(ChooseWindow, APriceOfNothingForAColdStartStopsAtOnce) {
  PoolPolicy p = adaptive();
  p.adaptive.cold_start_cost = 0s;
  EXPECT_EQ(choose_window(with({{100, 20}}), p).value, 60s);
  p.adaptive.cold_start_cost = 86400s;  // and a dear one keeps it for everything under the maximum
  EXPECT_EQ(choose_window(with({{100, 10}, {1500, 10}}), p).value, 2048s);
}

TEST(Rhythm, LooksAtEachOctaveEdgeOfASilenceUpToTheWindow) {
  Rhythm r;
  r.observe(at(0), at(0), 60s);
  std::vector<double> looks;
  for (auto look = r.next_look(600s, 60s); look; look = r.next_look(600s, 60s)) {
    looks.push_back(to_seconds(*look));
    r.observe(*look, at(0), 60s);
  }
  EXPECT_EQ(looks, (std::vector<double>{60, 64, 128, 256, 512}));
}

TEST(Rhythm, ASilenceSeenEndingIsBinnedByItsLowerBound) {
  Rhythm r;
  r.observe(at(0), at(0), 60s);
  r.observe(at(64), at(0), 60s);     // silent at 64
  r.observe(at(128), at(100), 60s);  // it ended by 100
  EXPECT_EQ(r.histogram.counts[6], 1u);
  EXPECT_EQ(r.histogram.total(), 1u);
  r.observe(at(160), at(150), 60s);  // a silence under a minute (100 -> 150): not kept
  EXPECT_EQ(r.histogram.total(), 1u);
  EXPECT_EQ(r.anchor(), at(150));
}

TEST(Rhythm, ASilenceEndedByAWakeIsExact) {
  Rhythm r;
  r.observe(at(0), at(0), 60s);
  r.stopped();
  r.observe(at(500), at(490), 60s);  // a reading while stopped is not a silence's end
  EXPECT_EQ(r.histogram.total(), 0u);
  EXPECT_FALSE(r.next_look(600s, 60s));
  r.used_again(at(3000), 60s);
  EXPECT_EQ(r.histogram.counts[11], 1u);
  EXPECT_EQ(r.recent.count, 0u) << "no visit began before: no period yet";
  EXPECT_FALSE(r.is_stopped());
}

// Pre-warms follow the periods between visits, which a wake's cost does not move: a cron every 20 s whose wakes take
// 1 to 6 s has silences of 14 to 19 s, and periods of 20 s.
TEST(Rhythm, PeriodsBetweenVisitsDoNotCarryTheWakesCost) {
  Rhythm r;
  PoolPolicy p;
  p.adaptive.on = true;
  p.adaptive.prewarm = true;
  p.adaptive.min = 2s;
  p.adaptive.max = 8s;
  double wake[] = {1, 6, 2, 5, 1, 4, 3};
  for (int k = 0; k < 7; ++k) {
    double t = 20.0 * k;
    r.woken(at(t), 2s);
    r.observe(at(t + wake[k] + 0.5), at(t + wake[k]), 2s);
    r.stopped();
  }
  EXPECT_EQ(r.recent.in_order(), std::vector<uint32_t>(6, 20));
  auto plan = r.next_prewarm(p);
  ASSERT_TRUE(plan) << "silences of 14 to 19 s are irregular; the periods are not";
  EXPECT_EQ(plan->start, at(120 + 20 - 2));
  EXPECT_EQ(plan->hold_until, at(120 + 20 + 2));
  r.began_anew();  // someone else started it: no period across that
  r.used_again(at(500), 2s);
  EXPECT_EQ(r.recent.count, 6u);
}

TEST(Rhythm, AWakesOwnConnectionIsNoNewSilence) {
  Rhythm r;
  r.observe(at(0), at(0), 2s);
  r.stopped();
  r.woken(at(20), 2s);  // a connection started it; php-fpm takes 5 s to accept it
  r.observe(at(21), at(0), 2s);
  r.observe(at(24), at(0), 2s);
  r.observe(at(26), at(25), 2s);  // the waking connection, accepted: the same visit
  EXPECT_EQ(r.histogram.total(), 1u);
  EXPECT_EQ(r.histogram.counts[4], 1u);  // only the 20 s silence, [16, 32)
  EXPECT_EQ(r.anchor(), at(25));
  r.observe(at(40), at(30), 2s);  // a later request: a silence of its own again (25 -> 30, seen silent until 26)
  EXPECT_EQ(r.histogram.total(), 1u);
  r.observe(at(60), at(50), 2s);  // 30 -> 50, seen silent until 40: 10 s, [8, 16)
  EXPECT_EQ(r.histogram.total(), 2u);
  EXPECT_EQ(r.histogram.counts[3], 1u);
}

TEST(SlowestLastHour, KeepsTheMaximumOfTheLastTwelveFiveMinuteSlots) {
  status::SlowestLastHour s;
  EXPECT_FALSE(s.at(at(0)));
  s.observe(at(10), 0.5);
  s.observe(at(20), 3.0);
  s.observe(at(400), 1.0);  // the next slot
  EXPECT_EQ(s.at(at(400)), 3.0);
  EXPECT_EQ(s.at(at(3000)), 3.0);
  EXPECT_EQ(s.at(at(3600)), 1.0) << "the first slot is an hour old";
  EXPECT_FALSE(s.at(at(4000)));
  for (int i = 0; i < 1000; ++i) s.observe(at(4000 + i * 7), 0.1 * (i % 10));  // bounded, whatever the rate
  EXPECT_EQ(s.at(at(4000 + 999 * 7)), 0.9);
  EXPECT_EQ(sizeof(s), status::SlowestLastHour::kSlots * 16);
}

TEST(RecentGaps, KeepsTheLatestEightInOrder) {
  RecentGaps g;
  EXPECT_TRUE(g.in_order().empty());
  for (uint32_t s = 1; s <= 10; ++s) g.add(std::chrono::seconds(s));
  EXPECT_EQ(g.in_order(), (std::vector<uint32_t>{3, 4, 5, 6, 7, 8, 9, 10}));
}

RecentGaps recent(std::initializer_list<uint32_t> gaps) {
  RecentGaps g;
  for (auto s : gaps) g.add(at(s));
  return g;
}

TEST(Prewarm, RegularSilencesArePredicted) {
  auto plan = plan_prewarm(recent({3600, 3590, 3650, 3570, 3610}), at(10000), at(10000 + 60));
  ASSERT_TRUE(plan);
  EXPECT_EQ(plan->start, at(10000 + 3570 - 360));
  EXPECT_EQ(plan->hold_until, at(10000 + 3650 + 360));
}

TEST(Prewarm, NotWhenIrregularTooFewOrCoveredByTheWindow) {
  EXPECT_FALSE(plan_prewarm(recent({3600, 1200, 3650, 3570, 3610}), at(0), at(60)));
  EXPECT_FALSE(plan_prewarm(recent({3600, 3600, 3600, 3600}), at(0), at(60)));
  EXPECT_FALSE(plan_prewarm(recent({300, 300, 300, 300, 300}), at(0), at(600)));
  EXPECT_FALSE(plan_prewarm(recent({300, 300, 300, 300, 300}), at(0), at(280))) << "stopped after the start";
  EXPECT_TRUE(plan_prewarm(recent({300, 300, 300, 300, 300}), at(0), at(200)));
}

TEST(Simulate, AFixedTimeoutCountedByHand) {
  PoolPolicy p;
  p.idle_timeout = 60s;
  Rhythm r;
  // Up 0..70 (60 s idle after the request at 10), 200..265, 1000..1060.2: 195.2 s, three cold starts; the request
  // at 1000.2 comes while the cold start at 1000 is still starting.
  SimResult s = simulate_pool({at(0), at(10), at(200), at(205), at(1000), at(1000.2)}, p, r);
  EXPECT_EQ(s.requests, 6u);
  EXPECT_EQ(s.cold_starts, 3u);
  EXPECT_EQ(s.cold_requests, 4u);
  EXPECT_EQ(s.stops, 3u);
  EXPECT_NEAR(to_seconds(s.running), 195.2, 1e-6);
  EXPECT_EQ(s.prewarms, 0u);
}

TEST(Simulate, MinUptimeHoldsAShortVisit) {
  PoolPolicy p;
  p.idle_timeout = 5s;
  p.min_uptime = 30s;
  Rhythm r;
  SimResult s = simulate_pool({at(0)}, p, r);
  EXPECT_DOUBLE_EQ(to_seconds(s.running), 30);
}

TEST(Simulate, APeriodicClientIsPrewarmedOnceItsRhythmIsKnown) {
  PoolPolicy p = adaptive(60s, 300s);
  p.adaptive.min_samples = 3;
  p.adaptive.prewarm = true;
  std::vector<MonoTime> requests;
  for (int i = 0; i < 10; ++i) requests.push_back(at(600.0 * i));
  Rhythm r;
  SimResult s = simulate_pool(requests, p, r);
  // Cold: the first request, and the next five while five exact silences are gathered; then each of the last four
  // is met by a pool started 60 s before it (a tenth of the period) and held until 60 s after. A fifth pre-warm,
  // after the trace's last request, meets nothing and ends with its hold.
  EXPECT_EQ(s.cold_starts, 6u);
  EXPECT_EQ(s.prewarms, 5u);
  EXPECT_EQ(s.prewarm_hits, 4u);
  // Running: 0..300 (fallback: one silence), 600..900, 1200..1500, then the learnt 60 s: 1800..1860, 2400..2460,
  // 3000..3060; pre-warmed 3540..3660 five times (the request at 3600 and its 60 s window end there too).
  EXPECT_DOUBLE_EQ(to_seconds(s.running), 300 * 3 + 60 * 3 + 120 * 5);
}

TEST(Simulate, WithoutPrewarmTheSamePeriodicClientStaysCold) {
  PoolPolicy p = adaptive(60s, 300s);
  p.adaptive.min_samples = 3;
  std::vector<MonoTime> requests;
  for (int i = 0; i < 10; ++i) requests.push_back(at(600.0 * i));
  Rhythm r;
  SimResult s = simulate_pool(requests, p, r);
  EXPECT_EQ(s.cold_starts, 10u);
  EXPECT_EQ(s.prewarms, 0u);
}

}  // namespace
}  // namespace idlepool
