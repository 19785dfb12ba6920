// The stall idlepoold repairs, on real php-fpm: its ondemand master forks a worker only on the edge of a new
// connection, and skips the fork while it counts an idle worker. A connection that arrives while that worker is
// being reaped (pm.process_idle_timeout) is accepted by nobody until the next connection comes (php bug #69724).
// tests/support/miss_accept_edge.c (LD_PRELOAD) makes the master miss one connection's edge when the test arms it,
// once the pool has no worker left: the stall, every time. The request must then still be waiting seconds later,
// and one sys::nudge must get it answered.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <thread>

#include "fastcgi_client.h"
#include "idlepool/sys/nudge.h"
#include "php_fpm.h"
#include "test_server.h"

namespace idlepool::testing {
namespace {

using namespace std::chrono_literals;

// The master's children (php-fpm's workers), from /proc.
size_t children_of(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/task/" + std::to_string(pid) + "/children");
  size_t n = 0;
  for (pid_t c; in >> c;) ++n;
  return n;
}

class PhpFpmStall : public ::testing::TestWithParam<bool /*tcp*/> {};

TEST_P(PhpFpmStall, AConnectionMissedByTheOndemandMasterWaitsForANudge) {
  char tmpl[] = "/tmp/idlepool-stall-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  std::string marks = tmpl;
  ::chmod(marks.c_str(), 01777);
  PhpFpmOptions options;
  options.pm = "ondemand";
  options.max_children = 2;
  options.process_idle_timeout_s = 1;
  options.tcp = GetParam();
  options.env = {{"LD_PRELOAD", IDLEPOOL_MISS_ACCEPT_EDGE}, {"IDLEPOOL_MISS_DIR", marks}};
  PhpFpmPool pool(options);  // its readiness request made one worker; idle, it is reaped within ~2 s
  std::string hello = pool.script("hello.php", "<?php echo 'hello';");
  ASSERT_TRUE(eventually([&] { return children_of(pool.master_pid()) == 0; }, 10s))
      << "the idle worker was never reaped";
  { std::ofstream arm(marks + "/arm"); }  // the master misses the next connection's edge

  std::atomic<bool> answered{false};
  std::string body;
  std::thread client([&] {
    auto c = FastCgiClient::connect(pool.address(), false);
    if (!c) return;
    auto r = c->request(hello);
    if (r) body = r->body();
    answered = true;
  });
  ASSERT_TRUE(eventually([&] { return std::filesystem::exists(marks + "/missed"); }, 10s))
      << "the master never saw the connection";
  // php-fpm would fork at once had it seen the edge; it did not, and nothing else makes it look.
  std::this_thread::sleep_for(2s);
  EXPECT_FALSE(answered) << "php-fpm answered by itself";
  EXPECT_EQ(children_of(pool.master_pid()), 0u) << "no worker to take the connection: stalled";

  auto r = sys::nudge(pool.address());
  EXPECT_TRUE(r.ok()) << r.error().message;
  EXPECT_TRUE(eventually([&] { return answered.load(); }, 3s)) << "the nudge did not get the request answered";
  if (!answered) ::kill(pool.master_pid(), SIGKILL);  // frees the client thread
  client.join();
  EXPECT_EQ(body, "hello");
  std::filesystem::remove_all(marks);
}

INSTANTIATE_TEST_SUITE_P(Host, PhpFpmStall, ::testing::Values(false, true),
                         [](const auto& p) { return p.param ? std::string("tcp") : std::string("unix"); });

}  // namespace
}  // namespace idlepool::testing
