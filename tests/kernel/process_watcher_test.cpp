// The process connector and the watcher on the real kernel: real cgroups, real forks and exits. Needs root and the
// initial pid namespace.
#include "idlepool/sys/process_watcher.h"

#include <fcntl.h>
#include <grp.h>
#include <gtest/gtest.h>
#include <malloc.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "idlepool/sys/cgroup.h"
#include "subprocess.h"
#include "test_server.h"

namespace idlepool::testing {
namespace {

using sys::CgroupFs;
using sys::ProcConnector;
using sys::ProcessWatcher;
using Kind = PoolEvent::Kind;

// A cgroup of its own under the cgroup2 root, emptied and removed at the end.
class TestCgroup {
 public:
  explicit TestCgroup(const CgroupFs& fs) {
    static int n = 0;
    rel_ = "/idlepool-test-" + std::to_string(getpid()) + "-" + std::to_string(++n);
    abs_ = fs.root() + rel_;
    std::filesystem::create_directory(abs_);
  }
  ~TestCgroup() {
    for (int i = 0; i < 200; ++i) {
      auto procs = sys::read_text_file(abs_ + "/cgroup.procs");
      if (!procs || procs->empty()) break;
      std::istringstream in(*procs);
      for (int pid; in >> pid;) kill(pid, SIGKILL);
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    rmdir(abs_.c_str());
  }
  const std::string& path() const { return rel_; }
  void add(pid_t pid) const { std::ofstream(abs_ + "/cgroup.procs") << pid << "\n"; }

 private:
  std::string rel_, abs_;
};

// A pool's process tree driven from the test: a master in the cgroup that forks workers on command; each worker
// exits when told, with a given code or signal.
class FakePool {
 public:
  static constexpr int kMaxWorkers = 8;

  explicit FakePool(const TestCgroup& cgroup) {
    int cmd[2], resp[2];
    EXPECT_EQ(pipe(cmd), 0);
    EXPECT_EQ(pipe(resp), 0);
    for (auto& w : worker_pipes_) EXPECT_EQ(pipe(w.data()), 0);
    int joined[2];
    EXPECT_EQ(pipe(joined), 0);
    master_ = fork();
    if (master_ == 0) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      char go;
      if (read(joined[0], &go, 1) != 1) _exit(90);  // wait until moved into the cgroup
      master_loop(cmd[0], resp[1]);
    }
    cgroup.add(master_);
    (void)!write(joined[1], "g", 1);
    close(joined[0]);
    close(joined[1]);
    cmd_ = cmd[1];
    resp_ = resp[0];
    close(cmd[0]);
    close(resp[1]);
    for (auto& w : worker_pipes_) close(w[0]);
  }
  ~FakePool() {
    kill(master_, SIGKILL);
    waitpid(master_, nullptr, 0);
    close(cmd_);
    close(resp_);
    for (auto& w : worker_pipes_) close(w[1]);
  }
  pid_t master() const { return master_; }
  // Forks worker `i`; returns its pid.
  pid_t start_worker(int i) {
    char c[2] = {'f', static_cast<char>(i)};
    EXPECT_EQ(write(cmd_, c, 2), 2);
    pid_t pid = 0;
    EXPECT_EQ(read(resp_, &pid, sizeof(pid)), static_cast<ssize_t>(sizeof(pid)));
    return pid;
  }
  void worker_exits(int i, int code) { send_worker(i, static_cast<uint8_t>(code)); }
  void worker_killed(int i, int sig) { send_worker(i, static_cast<uint8_t>(0x80 | sig)); }
  void master_exits(int code) {
    char c[2] = {'x', static_cast<char>(code)};
    EXPECT_EQ(write(cmd_, c, 2), 2);
    int status = 0;
    waitpid(master_, &status, 0);
  }

 private:
  void send_worker(int i, uint8_t how) { EXPECT_EQ(write(worker_pipes_[i][1], &how, 1), 1); }

  [[noreturn]] void master_loop(int cmd, int resp) {
    for (;;) {
      char c[2];
      if (read(cmd, c, 2) != 2) _exit(91);
      if (c[0] == 'x') _exit(c[1]);
      int i = c[1];
      pid_t w = fork();
      if (w == 0) {
        uint8_t how = 0;
        if (read(worker_pipes_[i][0], &how, 1) != 1) _exit(92);
        if (how & 0x80) raise(how & 0x7f);
        _exit(how);
      }
      (void)!write(resp, &w, sizeof(w));
      // Reap exited workers without blocking, as php-fpm's master does.
      while (waitpid(-1, nullptr, WNOHANG) > 0) {
      }
    }
  }

  pid_t master_ = -1;
  int cmd_ = -1, resp_ = -1;
  std::array<std::array<int, 2>, kMaxWorkers> worker_pipes_{};
};

// Reads the watcher until `done` holds (or 10 s), collecting every pool event.
bool pump(ProcessWatcher& w, std::vector<PoolEvent>& events, const std::function<bool()>& done) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    pollfd p{w.fd(), POLLIN, 0};
    poll(&p, 1, 50);
    auto got = w.on_readable();
    EXPECT_TRUE(got.ok()) << got.error().message;
    if (got) events.insert(events.end(), got->begin(), got->end());
    // A resync a loss left owed, when it is due (the daemon arms a timer for it).
    if (auto due = w.resync_due(); due && std::chrono::steady_clock::now() >= *due) {
      auto found = w.resync_deferred();
      EXPECT_TRUE(found.ok()) << found.error().message;
      if (found) events.insert(events.end(), found->begin(), found->end());
    }
  }
  return true;
}

int count_of(const std::vector<PoolEvent>& events, Kind kind) {
  return static_cast<int>(std::count_if(events.begin(), events.end(), [&](const auto& e) { return e.kind == kind; }));
}

// A process outside every test cgroup that forks `children` short-lived children, then exits.
pid_t outsider(int children) {
  pid_t p = fork();
  if (p == 0) {
    for (int i = 0; i < children; ++i) {
      pid_t c = fork();
      if (c == 0) _exit(0);
      if (c > 0) waitpid(c, nullptr, 0);
    }
    _exit(0);
  }
  return p;
}

class ProcessWatcherTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto fs = CgroupFs::open();
    ASSERT_TRUE(fs.ok()) << fs.error().message;
    fs_ = std::make_unique<CgroupFs>(std::move(*fs));
  }
  std::unique_ptr<ProcessWatcher> watcher(const sys::ProcConnectorOptions& options = {}) {
    auto pc = ProcConnector::open(options);
    EXPECT_TRUE(pc.ok()) << pc.error().message;
    if (!pc) std::abort();
    return std::make_unique<ProcessWatcher>(std::move(*pc), *fs_);
  }
  std::unique_ptr<CgroupFs> fs_;
};

TEST_F(ProcessWatcherTest, FollowsAPoolsWorkersAndMainProcessExactly) {
  TestCgroup cg(*fs_);
  FakePool pool(cg);
  auto w = watcher();
  ASSERT_TRUE(w->add_pool("test.service", cg.path()).ok());
  auto c = *w->processes("test.service");
  EXPECT_EQ(c.processes, 1u);
  EXPECT_EQ(c.workers, 0u);
  EXPECT_EQ(c.main_pid, pool.master());
  std::vector<PoolEvent> events;
  pid_t noise = outsider(20);  // processes outside the cgroup are not the pool's
  pid_t workers[3];
  for (int i = 0; i < 3; ++i) workers[i] = pool.start_worker(i);
  ASSERT_TRUE(pump(*w, events, [&] { return w->processes("test.service")->workers == 3; }));
  waitpid(noise, nullptr, 0);
  pool.worker_exits(0, 0);
  pool.worker_exits(1, 7);
  ASSERT_TRUE(pump(*w, events, [&] { return w->processes("test.service")->workers == 1; }));
  EXPECT_TRUE(events.empty()) << "an event before the last worker exited: " << to_string(events[0].kind);
  EXPECT_EQ(w->processes("test.service")->processes, 2u) << "outsiders were counted";
  pool.worker_killed(2, SIGKILL);
  ASSERT_TRUE(pump(*w, events, [&] { return count_of(events, Kind::kLastWorkerExited) == 1; }));
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].pid, workers[2]);
  EXPECT_EQ(events[0].status, (ExitStatus{true, true, SIGKILL}));
  EXPECT_TRUE(w->processes("test.service")->main_alive);
  events.clear();
  pool.master_exits(3);
  ASSERT_TRUE(pump(*w, events, [&] { return count_of(events, Kind::kBecameEmpty) == 1; }));
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0], (PoolEvent{"test.service", Kind::kMainExited, pool.master(), {true, false, 3}}));
  EXPECT_EQ(events[1].kind, Kind::kBecameEmpty);
  EXPECT_EQ(w->processes("test.service")->processes, 0u);
  auto stats = w->stats();
  EXPECT_EQ(stats.connector.lost, 0u);
  EXPECT_EQ(stats.connector.rejected, 0u);
  EXPECT_GT(stats.connector.events, 0u);
}

TEST_F(ProcessWatcherTest, SeedsAPoolThatIsAlreadyRunning) {
  TestCgroup cg(*fs_);
  FakePool pool(cg);
  pool.start_worker(0);
  pool.start_worker(1);
  auto w = watcher();
  ASSERT_TRUE(w->add_pool("running.service", cg.path()).ok());
  auto c = *w->processes("running.service");
  EXPECT_EQ(c.processes, 3u);
  EXPECT_EQ(c.workers, 2u);
  EXPECT_EQ(c.main_pid, pool.master());
  std::vector<PoolEvent> events;
  pool.worker_exits(0, 0);
  pool.worker_exits(1, 0);
  ASSERT_TRUE(pump(*w, events, [&] { return count_of(events, Kind::kLastWorkerExited) == 1; }));
}

TEST_F(ProcessWatcherTest, DetectsLostEventsCountsThemAndResynchronises) {
  TestCgroup cg(*fs_);
  FakePool pool(cg);
  // A small receive buffer, and no reading while thousands of processes come and go.
  sys::ProcConnectorOptions small;
  small.receive_buffer_bytes = 16 * 1024;
  auto w = watcher(small);
  ASSERT_TRUE(w->add_pool("storm.service", cg.path()).ok());
  pid_t storm = outsider(3000);
  for (int i = 0; i < 4; ++i) pool.start_worker(i);  // during the storm: their forks may well be among the lost
  waitpid(storm, nullptr, 0);
  std::vector<PoolEvent> events;
  ASSERT_TRUE(pump(*w, events, [&] { return w->stats().loss_episodes > 0; })) << "no loss detected";
  EXPECT_GT(w->stats().connector.overruns, 0u);
  EXPECT_GE(w->stats().resyncs, 1u);
  // After the resync the counts are the cgroup's: the master and its 4 workers.
  ASSERT_TRUE(pump(*w, events, [&] { return w->processes("storm.service")->processes == 5; }));
  EXPECT_EQ(w->processes("storm.service")->workers, 4u);
  EXPECT_EQ(count_of(events, Kind::kBecameEmpty), 0);
  events.clear();
  for (int i = 0; i < 4; ++i) pool.worker_exits(i, 0);
  ASSERT_TRUE(pump(*w, events, [&] { return count_of(events, Kind::kLastWorkerExited) == 1; }));
  EXPECT_EQ(w->processes("storm.service")->workers, 0u);
  // The events after the storm show the gaps in the per-CPU sequences: how many were lost.
  auto stats = w->stats();
  EXPECT_GT(stats.connector.lost, 1000u) << "3000 forks make over 6000 events; the buffer holds a few dozen";
  std::cout << "[ info ] storm of 3000 forks into a 16 KiB buffer: " << stats.connector.events << " events read, "
            << stats.connector.lost << " lost (" << stats.connector.overruns << " overruns), " << stats.resyncs
            << " resyncs\n";
}

// The last workers exit while events are being lost: their exits and the loss come in one drain, so the resync
// must compare with the state before the drain, not the one the exits already moved.
TEST_F(ProcessWatcherTest, ReportsTheLastWorkerGoneWhenItsExitCameWithALoss) {
  TestCgroup cg(*fs_);
  FakePool pool(cg);
  sys::ProcConnectorOptions small;
  small.receive_buffer_bytes = 16 * 1024;
  auto w = watcher(small);
  for (int i = 0; i < 3; ++i) pool.start_worker(i);
  ASSERT_TRUE(w->add_pool("lossy.service", cg.path()).ok());
  ASSERT_EQ(w->processes("lossy.service")->workers, 3u);
  for (int i = 0; i < 3; ++i) pool.worker_exits(i, 0);
  pid_t storm = outsider(3000);
  waitpid(storm, nullptr, 0);
  std::vector<PoolEvent> events;
  ASSERT_TRUE(pump(*w, events, [&] { return count_of(events, Kind::kLastWorkerExited) == 1; }))
      << "loss episodes " << w->stats().loss_episodes << ", workers " << w->processes("lossy.service")->workers;
  EXPECT_GE(w->stats().loss_episodes, 1u);
  EXPECT_EQ(w->processes("lossy.service")->workers, 0u);
  EXPECT_EQ(count_of(events, Kind::kBecameEmpty), 0);
}

TEST_F(ProcessWatcherTest, NeverReportsEmptyWhileTheCgroupHoldsAProcess) {
  TestCgroup cg(*fs_);
  FakePool pool(cg);
  auto w = watcher();
  ASSERT_TRUE(w->add_pool("moved.service", cg.path()).ok());
  // A process moved into the cgroup from outside (as systemd does with its helpers): no fork event says so.
  pid_t stranger = fork();
  if (stranger == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    pause();
    _exit(0);
  }
  cg.add(stranger);
  std::vector<PoolEvent> events;
  pool.master_exits(0);
  ASSERT_TRUE(pump(*w, events, [&] { return count_of(events, Kind::kMainExited) == 1; }));
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  pump(*w, events, [] { return true; });
  EXPECT_EQ(count_of(events, Kind::kBecameEmpty), 0) << "reported empty while the cgroup holds " << stranger;
  EXPECT_EQ(w->processes("moved.service")->processes, 1u);
  EXPECT_GE(w->stats().corrected, 1u);
  kill(stranger, SIGKILL);
  waitpid(stranger, nullptr, 0);
  ASSERT_TRUE(pump(*w, events, [&] { return count_of(events, Kind::kBecameEmpty) == 1; }));
}

TEST_F(ProcessWatcherTest, BadCgroupIsNamed) {
  auto w = watcher();
  auto r = w->add_pool("ghost.service", "/idlepool-no-such-cgroup");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("ghost.service"), std::string::npos) << r.error().message;
  EXPECT_NE(r.error().message.find("/idlepool-no-such-cgroup/cgroup.procs"), std::string::npos) << r.error().message;
}

// Any local user can make the kernel send every process-connector listener an acknowledgement: a flood of them, as
// nobody, must leave the listener's memory as it was (before, each one was kept for good).
TEST(ProcConnector, AnAckFloodFromNobodyLeavesNothingBehind) {
  auto pc = ProcConnector::open();
  ASSERT_TRUE(pc.ok()) << pc.error().message;
  auto heap_in_use = [] { return mallinfo2().uordblks; };
  auto drain = [&] { return (*pc)->drain([](const wire::ProcEvent&) {}); };
  ASSERT_TRUE(drain().ok());
  size_t before = heap_in_use();
  int out[2];
  ASSERT_EQ(pipe(out), 0);
  pid_t flood = fork();
  if (flood == 0) {
    ::close(out[0]);
    dup2(out[1], 1);
    if (setgroups(0, nullptr) != 0 || setgid(65534) != 0 || setuid(65534) != 0) _exit(3);
    std::string bin = test_binary("ack_flood");
    execl(bin.c_str(), bin.c_str(), "300000", nullptr);
    _exit(4);
  }
  ::close(out[1]);
  // Read while it floods, as the daemon's loop would.
  int status = 0;
  while (waitpid(flood, &status, WNOHANG) == 0) {
    pollfd p{(*pc)->fd(), POLLIN, 0};
    poll(&p, 1, 10);
    ASSERT_TRUE(drain().ok());
  }
  ASSERT_TRUE(drain().ok());
  char sent[32] = {};
  (void)!::read(out[0], sent, sizeof(sent) - 1);
  ::close(out[0]);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "ack_flood failed";
  size_t after = heap_in_use();
  const auto& st = (*pc)->stats();
  EXPECT_GT(st.acks + st.overruns, 0u) << "the flood never reached the listener (" << sent << " sent)";
  EXPECT_LT(after, before + (256u << 10))
      << "heap grew from " << before << " to " << after << " bytes over " << st.acks << " acknowledgements";
  std::cout << "[ info ] " << atol(sent) << " requests from nobody: " << st.acks << " acknowledgements read, "
            << st.overruns << " overruns; heap " << before << " -> " << after << " bytes\n";
}

TEST(ProcConnector, SubscribesWithAnAcknowledgementAndUnsubscribes) {
  auto pc = ProcConnector::open();
  ASSERT_TRUE(pc.ok()) << pc.error().message;
  auto closed = (*pc)->close();
  EXPECT_TRUE(closed.ok()) << closed.error().message;
  EXPECT_TRUE((*pc)->close().ok()) << "closing twice";
  auto again = ProcConnector::open();
  EXPECT_TRUE(again.ok()) << again.error().message;
}

TEST(ProcConnector, RefusesToRunOutsideTheInitialPidNamespace) {
  int out[2];
  ASSERT_EQ(pipe(out), 0);
  pid_t child = fork();
  if (child == 0) {
    if (unshare(CLONE_NEWPID) != 0) _exit(2);
    pid_t inner = fork();  // the first child of the new namespace is its pid 1
    if (inner == 0) {
      auto pc = ProcConnector::open();
      std::string msg = pc.ok() ? "OPENED" : pc.error().message;
      (void)!write(out[1], msg.data(), msg.size());
      _exit(0);
    }
    int st = 0;
    waitpid(inner, &st, 0);
    _exit(WIFEXITED(st) ? WEXITSTATUS(st) : 3);
  }
  close(out[1]);
  std::string msg;
  char buf[512];
  for (ssize_t n; (n = read(out[0], buf, sizeof(buf))) > 0;) msg.append(buf, static_cast<size_t>(n));
  close(out[0]);
  int status = 0;
  waitpid(child, &status, 0);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  EXPECT_NE(msg.find("not in the initial pid and user namespaces"), std::string::npos) << msg;
}

}  // namespace
}  // namespace idlepool::testing
