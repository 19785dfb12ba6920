// The probe against real php-fpm (Debian's php-fpm8.2), spoken to over FastCGI as nginx does: with and without
// kept-alive connections. php-fpm reads a request's final empty FCGI_STDIN record only after answering, which is
// what request counting must not mistake for a new request. Runs on the host (php-fpm is not in the QEMU guests).
#include <gtest/gtest.h>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <memory>
#include <thread>

#include "fastcgi_client.h"
#include "idlepool/sys/cgroup.h"
#include "idlepool/sys/probe.h"
#include "php_fpm.h"
#include "test_server.h"

namespace idlepool::testing {
namespace {

class ProbeOnPhpFpm : public ::testing::TestWithParam<bool /*tcp*/> {
 protected:
  // A pool of `pm` with `children`, a hello.php in it, and the probe watching its socket.
  void watch(const std::string& pm, int children) {
    PhpFpmOptions options;
    options.pm = pm;
    options.max_children = children;
    options.tcp = GetParam();
    pool = std::make_unique<PhpFpmPool>(options);
    hello = pool->script("hello.php", "<?php echo 'hello';");
    auto loaded = sys::Probe::load({});
    ASSERT_TRUE(loaded.ok()) << loaded.error().message;
    probe = std::move(*loaded);
    auto id = probe->add(pool->address());
    ASSERT_TRUE(id.ok()) << id.error().message;
  }
  std::unique_ptr<PhpFpmPool> pool;
  std::string hello;
  std::unique_ptr<sys::Probe> probe;
};

TEST_P(ProbeOnPhpFpm, CountsEachFastCgiRequestOnceWithAndWithoutKeepAlive) {
  watch("ondemand", 2);
  if (HasFatalFailure()) return;

  for (int i = 0; i < 3; ++i) {  // like nginx's default: a connection per request, closed by php-fpm
    auto c = FastCgiClient::connect(pool->address(), false);
    ASSERT_TRUE(c.ok()) << c.error().message;
    auto r = c->request(hello);
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_EQ(r->body(), "hello");
  }
  {
    auto c = FastCgiClient::connect(pool->address(), true);  // fastcgi_keep_conn on
    ASSERT_TRUE(c.ok());
    for (int i = 0; i < 4; ++i) {
      auto r = c->request(hello);
      ASSERT_TRUE(r.ok()) << r.error().message;
      EXPECT_EQ(r->body(), "hello");
    }
  }
  sys::ListenerSnapshot last;
  bool settled = eventually([&] {
    auto snaps = probe->read();
    if (!snaps || snaps->empty()) return false;
    last = snaps->front();
    return last.accepts == 4 && last.requests == 7u && last.active == 0;
  });
  EXPECT_TRUE(settled) << "accepts=" << last.accepts << " requests=" << (last.requests ? *last.requests : 0)
                       << " active=" << last.active << " (expected 4, 7, 0)";
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  auto again = probe->read();
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->front().requests, 7u) << "counted more after settling";
}

// A connection nginx keeps alive (fastcgi_keep_conn) after php-fpm answered: idle, not in flight. php-fpm reads the
// request's empty FCGI_STDIN record after answering (8 bytes, what its service kind allows), and its worker waits in
// read() on the connection, which is how idlepoold confirms it before it shuts the connection down for a stop
// (keepalive-connections = close); the worker then goes back to accept() and serves a new connection.
TEST_P(ProbeOnPhpFpm, AKeptAliveConnectionIsIdleAndItsWorkerWaitsOnIt) {
  watch("static", 1);
  if (HasFatalFailure()) return;

  auto c = FastCgiClient::connect(pool->address(), true);
  ASSERT_TRUE(c.ok());
  for (int i = 0; i < 2; ++i) ASSERT_TRUE(c->request(hello).ok());
  sys::ListenerSnapshot last;
  ASSERT_TRUE(eventually([&] {
    auto snaps = probe->read();
    if (!snaps || snaps->empty()) return false;
    last = snaps->front();
    return last.active == 1 && last.answered.size() == 1 && last.answered[0].received_since == 8;
  })) << "active="
      << last.active << " answered=" << last.answered.size()
      << " received since=" << (last.answered.empty() ? 0 : last.answered[0].received_since);
  uint32_t inode = last.answered[0].inode;

  // The pool's processes as its cgroup would list them: the master and its worker.
  char dir[] = "/tmp/idlepool-cgroup-XXXXXX";
  ASSERT_NE(::mkdtemp(dir), nullptr);
  std::string procs = std::to_string(pool->master_pid()) + "\n";
  std::ifstream children("/proc/" + std::to_string(pool->master_pid()) + "/task/" + std::to_string(pool->master_pid()) +
                         "/children");
  for (pid_t pid; children >> pid;) procs += std::to_string(pid) + "\n";
  std::filesystem::create_directory(std::string(dir) + "/pool");
  std::ofstream(std::string(dir) + "/pool/cgroup.procs") << procs;
  sys::CgroupFs cgroups(dir, "/proc");
  EXPECT_TRUE(eventually([&] { return cgroups.waiting_readers("/pool", {inode}) == 1; }))
      << "no worker of " << procs << " waits on socket " << inode;
  EXPECT_EQ(cgroups.waiting_readers("/pool", {inode + 1000000}), 0u) << "another socket";
  EXPECT_EQ(cgroups.shut_down_waiting("/pool", {inode}), 1u);
  ::signal(SIGPIPE, SIG_IGN);  // the write of the next request may meet the shut-down end, as nginx's would
  EXPECT_FALSE(c->request(hello).ok()) << "the connection was shut down";
  auto fresh = FastCgiClient::connect(pool->address(), true);
  ASSERT_TRUE(fresh.ok());
  auto r = fresh->request(hello);
  ASSERT_TRUE(r.ok()) << "the worker went back to accept(): " << r.error().message;
  EXPECT_EQ(r->body(), "hello");
  std::filesystem::remove_all(dir);
}

INSTANTIATE_TEST_SUITE_P(Host, ProbeOnPhpFpm, ::testing::Values(false, true),
                         [](const auto& p) { return p.param ? std::string("tcp") : std::string("unix"); });

}  // namespace
}  // namespace idlepool::testing
