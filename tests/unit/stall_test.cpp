// The pure bookkeeping around the policy: stall tracking (when a queue began to wait, when to look) and systemd's
// start-limit window, table by table with a fake clock.
#include "idlepool/core/stall.h"

#include <gtest/gtest.h>

#include "idlepool/core/start_limit.h"

namespace idlepool {
namespace {

using namespace std::chrono_literals;

MonoTime at(std::chrono::seconds s) { return std::chrono::duration_cast<MonoTime>(s); }

PoolPolicy stall_policy(std::chrono::seconds timeout = 5s) {
  PoolPolicy p;
  p.stall_timeout = timeout;
  return p;
}

TEST(StallTracker, LooksOnceAfterTheLastWorkerLeft) {
  StallTracker t;
  auto policy = stall_policy();
  t.worker_gone(at(100s));
  t.observe(7, 0, true, at(100s));
  t.settle(true, policy, at(100s));
  EXPECT_EQ(t.next_look({}, policy, at(100s)), at(105s)) << "one look, stall_timeout after the exit";
  t.observe(7, 0, true, at(105s));
  t.settle(true, policy, at(105s));
  EXPECT_EQ(t.next_look({}, policy, at(105s)), std::nullopt) << "nothing queued: no more looks";
}

TEST(StallTracker, AQueueWithNoAcceptSinceTheExitWaitedSinceTheExit) {
  StallTracker t;
  auto policy = stall_policy();
  t.worker_gone(at(100s));
  t.observe(7, 0, true, at(100s));
  t.settle(true, policy, at(100s));
  t.observe(7, 1, true, at(103s));
  EXPECT_EQ(t.queued_since(), at(100s)) << "nothing accepted since the last worker left";
  t.observe(8, 1, true, at(104s));
  EXPECT_EQ(t.queued_since(), at(104s)) << "accepts move: waiting since now";
  t.observe(8, 0, true, at(105s));
  EXPECT_EQ(t.queued_since(), std::nullopt);
  t.observe(8, 2, false, at(106s));
  EXPECT_EQ(t.queued_since(), std::nullopt) << "a stopped pool does not stall: its socket unit wakes it";
}

TEST(StallTracker, ReadingsOutsideEvaluationsAreNotTaken) {
  // The manager calls observe() from evaluations only; a tracker left alone keeps its timing whatever is read.
  StallTracker t;
  auto policy = stall_policy();
  t.worker_gone(at(100s));
  t.observe(1, 1, true, at(101s));
  auto before = t.queued_since();
  EXPECT_EQ(t.next_look({false, at(105s)}, policy, at(102s)), at(105s));
  EXPECT_EQ(t.queued_since(), before);
}

TEST(StallTracker, NudgesOnceAStallTimeoutAndReportsOnce) {
  StallTracker t;
  auto policy = stall_policy();
  EXPECT_TRUE(t.nudge_due(policy, at(10s)));
  t.nudged(at(10s));
  EXPECT_FALSE(t.nudge_due(policy, at(14s)));
  EXPECT_TRUE(t.nudge_due(policy, at(15s)));
  EXPECT_EQ(t.next_look({true, std::nullopt}, policy, at(12s)), at(15s)) << "the next nudge, if still stalled";
  EXPECT_FALSE(t.reported());
  t.set_reported();
  EXPECT_TRUE(t.reported());
  t.observe(3, 0, true, at(16s));
  EXPECT_FALSE(t.reported()) << "a new stall is reported again";
}

TEST(StallTracker, TimeoutZeroLooksNever) {
  StallTracker t;
  auto off = stall_policy(0s);
  t.worker_gone(at(100s));
  t.settle(true, off, at(100s));
  EXPECT_EQ(t.next_look({}, off, at(100s)), std::nullopt);
}

TEST(StartLimitWindow, KeepsOneStartInHand) {
  StartLimitWindow w;
  w.configure(5, 10s);
  for (int i = 0; i < 3; ++i) w.record(at(100s + std::chrono::seconds(i)));
  EXPECT_FALSE(w.blocks(at(103s))) << "3 starts in 10 s: a fourth and a fifth would still be allowed";
  w.record(at(103s));
  auto b = w.blocks(at(104s));
  ASSERT_TRUE(b) << "4 starts: the wake after a stop could be the fifth, and one more fails the unit";
  EXPECT_EQ(b->until, at(110s)) << "until the oldest leaves the interval";
  EXPECT_NE(b->reason.find("4 starts in the last 10s; systemd allows 5"), std::string::npos) << b->reason;
  EXPECT_FALSE(w.blocks(at(110s)));
  EXPECT_EQ(w.starts_in_window(at(110s)), 3u);
}

TEST(StartLimitWindow, UnlimitedUnitsKeepNothing) {
  StartLimitWindow w;
  w.configure(0, 10s);
  for (int i = 0; i < 1000; ++i) w.record(at(std::chrono::seconds(i)));
  EXPECT_FALSE(w.limited());
  EXPECT_EQ(w.starts_in_window(at(1000s)), 0u);
  EXPECT_FALSE(w.blocks(at(1000s)));
  StartLimitWindow bounded;
  bounded.configure(3, 3600s);
  for (int i = 0; i < 1000; ++i) bounded.record(at(std::chrono::seconds(i)));
  EXPECT_EQ(bounded.starts_in_window(at(1000s)), 3u) << "never more kept than systemd would allow";
}

}  // namespace
}  // namespace idlepool
