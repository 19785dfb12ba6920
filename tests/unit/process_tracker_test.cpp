// The tracker's rules, driven by hand-made events: membership by descent, what each exit means, and never a
// workerless or empty pool on the strength of events while events may have been lost.
#include "idlepool/core/process_tracker.h"

#include <gtest/gtest.h>
#include <signal.h>

namespace idlepool {
namespace {

using Kind = PoolEvent::Kind;

ProcEvent fork_of(int32_t parent, int32_t child, int32_t child_tgid = 0) {
  ProcEvent e;
  e.kind = ProcEvent::Kind::kFork;
  e.parent_pid = e.parent_tgid = parent;
  e.pid = child;
  e.tgid = child_tgid ? child_tgid : child;
  return e;
}

ProcEvent exit_of(int32_t pid, uint32_t wait_status, int32_t tgid = 0) {
  ProcEvent e;
  e.kind = ProcEvent::Kind::kExit;
  e.pid = pid;
  e.tgid = tgid ? tgid : pid;
  e.exit_code = wait_status;
  return e;
}

uint32_t exited(int code) { return static_cast<uint32_t>(code) << 8; }
uint32_t killed(int sig) { return static_cast<uint32_t>(sig); }

class Tracker : public ::testing::Test {
 protected:
  void SetUp() override {
    // A php-fpm pool: master 100 (started by systemd, pid 1) with no workers yet.
    EXPECT_TRUE(t.sync("site.service", {{100, 1}}).empty());
  }
  std::vector<PoolEvent> apply(const ProcEvent& e) { return t.apply(e); }
  PoolProcesses counts() { return *t.processes("site.service"); }
  ProcessTracker t;
};

TEST_F(Tracker, SeedFindsTheMainProcessAsTheRootOfTheTree) {
  ProcessTracker fresh;
  fresh.sync("p", {{205, 200}, {200, 1}, {206, 200}});
  auto c = *fresh.processes("p");
  EXPECT_EQ(c.main_pid, 200);
  EXPECT_TRUE(c.main_alive);
  EXPECT_EQ(c.processes, 3u);
  EXPECT_EQ(c.workers, 2u);
  ProcessTracker told;
  told.sync("p", {{205, 200}, {200, 1}}, 205);  // systemd's MainPID wins
  EXPECT_EQ(told.processes("p")->main_pid, 205);
}

TEST_F(Tracker, ChildrenOfMembersJoinAndOthersDoNot) {
  EXPECT_TRUE(apply(fork_of(100, 101)).empty());
  EXPECT_TRUE(apply(fork_of(101, 102)).empty());  // a grandchild (a worker's exec'd helper) is the pool's too
  EXPECT_TRUE(apply(fork_of(500, 501)).empty());  // outside the pool
  EXPECT_TRUE(apply(fork_of(100, 103, /*child_tgid=*/100)).empty());  // a thread of the master, not a process
  auto c = counts();
  EXPECT_EQ(c.processes, 3u);
  EXPECT_EQ(c.workers, 2u);
  EXPECT_EQ(t.pool_of(102) ? *t.pool_of(102) : "", "site.service");
  EXPECT_EQ(t.pool_of(501), nullptr);
  EXPECT_TRUE(apply(exit_of(501, exited(0))).empty());
}

TEST_F(Tracker, LastWorkerExitingIsReportedWithItsStatusOnce) {
  apply(fork_of(100, 101));
  apply(fork_of(100, 102));
  EXPECT_TRUE(apply(exit_of(101, exited(0))).empty());
  EXPECT_TRUE(apply(exit_of(103, exited(0))).empty());  // never ours
  auto events = apply(exit_of(102, killed(SIGKILL)));
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0], (PoolEvent{"site.service", Kind::kLastWorkerExited, 102, {true, true, SIGKILL}}));
  EXPECT_EQ(counts().workers, 0u);
  EXPECT_TRUE(counts().main_alive);
}

TEST_F(Tracker, AThreadExitingIsNotAProcessExiting) {
  apply(fork_of(100, 101));
  EXPECT_TRUE(apply(exit_of(150, exited(0), /*tgid=*/101)).empty());
  EXPECT_EQ(counts().workers, 1u);
}

TEST_F(Tracker, MainExitingThenTheLastProcessEmptiesThePool) {
  apply(fork_of(100, 101));
  auto main = apply(exit_of(100, exited(3)));
  ASSERT_EQ(main.size(), 1u);
  EXPECT_EQ(main[0], (PoolEvent{"site.service", Kind::kMainExited, 100, {true, false, 3}}));
  // The orphaned worker is still the pool's; its exit empties it (no "last worker" without a main process).
  auto last = apply(exit_of(101, exited(0)));
  ASSERT_EQ(last.size(), 1u);
  EXPECT_EQ(last[0].kind, Kind::kBecameEmpty);
  EXPECT_EQ(counts().processes, 0u);
}

TEST_F(Tracker, MainAloneExitingReportsMainExitedAndEmpty) {
  auto events = apply(exit_of(100, killed(SIGTERM)));
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].kind, Kind::kMainExited);
  EXPECT_EQ(events[0].status.to_string(), "killed by signal 15");
  EXPECT_EQ(events[1].kind, Kind::kBecameEmpty);
}

TEST_F(Tracker, AfterALossEventsClaimNeitherWorkerlessNorEmpty) {
  apply(fork_of(100, 101));
  t.mark_lost();
  EXPECT_TRUE(t.in_doubt("site.service"));
  // A fork of 101 may have been lost: its exit must not make the pool look workerless.
  EXPECT_TRUE(apply(exit_of(101, exited(0))).empty());
  // The main process's exit is a fact and is still reported; "empty" is not.
  auto events = apply(exit_of(100, exited(0)));
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].kind, Kind::kMainExited);
}

TEST_F(Tracker, ResyncSaysWhatChangedAndClearsDoubt) {
  apply(fork_of(100, 101));
  t.mark_lost();
  // The cgroup shows: the master and a worker 107 the events never mentioned.
  EXPECT_TRUE(t.sync("site.service", {{100, 1}, {107, 100}}).empty());
  EXPECT_FALSE(t.in_doubt("site.service"));
  EXPECT_EQ(counts().workers, 1u);
  EXPECT_EQ(t.pool_of(101), nullptr);
  auto gone = t.sync("site.service", {{100, 1}});
  ASSERT_EQ(gone.size(), 1u);
  EXPECT_EQ(gone[0], (PoolEvent{"site.service", Kind::kLastWorkerExited, 0, {}}));
  auto empty = t.sync("site.service", {});
  ASSERT_EQ(empty.size(), 2u);
  EXPECT_EQ(empty[0].kind, Kind::kMainExited);
  EXPECT_EQ(empty[1].kind, Kind::kBecameEmpty);
}

TEST_F(Tracker, APoolStartingAgainGetsItsNewMainProcess) {
  apply(exit_of(100, exited(0)));
  t.sync("site.service", {{300, 1}, {301, 300}});
  EXPECT_EQ(counts().main_pid, 300);
  EXPECT_TRUE(counts().main_alive);
}

TEST_F(Tracker, RemovedPoolsForgetTheirProcesses) {
  apply(fork_of(100, 101));
  t.remove("site.service");
  EXPECT_FALSE(t.processes("site.service").has_value());
  EXPECT_EQ(t.pool_of(101), nullptr);
  EXPECT_TRUE(apply(exit_of(101, exited(0))).empty());
}

}  // namespace
}  // namespace idlepool
