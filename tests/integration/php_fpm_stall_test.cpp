// The stall idlepoold repairs, on real php-fpm: its ondemand master forks a worker only on the edge of a new
// connection, and skips the fork while it counts an idle worker. A connection that arrives while that worker is
// being reaped (pm.process_idle_timeout) is accepted by nobody until the next connection comes (php bug #69724).
// tests/support/slow_worker_exit.c (LD_PRELOAD) holds the exiting worker for 800 ms so the race is hit every time;
// then the request must still be waiting seconds later, and one sys::nudge must get it answered.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <atomic>
#include <filesystem>
#include <thread>

#include "fastcgi_client.h"
#include "idlepool/sys/nudge.h"
#include "php_fpm.h"
#include "test_server.h"

namespace idlepool::testing {
namespace {

using namespace std::chrono_literals;

bool worker_exiting(const std::string& dir) {
  for (const auto& e : std::filesystem::directory_iterator(dir))
    if (e.path().filename().string().rfind("exiting.", 0) == 0) return true;
  return false;
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
  options.env = {{"LD_PRELOAD", IDLEPOOL_SLOW_WORKER_EXIT},
                 {"IDLEPOOL_SLOW_EXIT_MS", "800"},
                 {"IDLEPOOL_SLOW_EXIT_DIR", marks}};
  PhpFpmPool pool(options);  // its readiness request made one worker; idle, it is reaped within ~2 s
  std::string hello = pool.script("hello.php", "<?php echo 'hello';");
  ASSERT_TRUE(eventually([&] { return worker_exiting(marks); }, 10s)) << "the idle worker was never reaped";

  std::atomic<bool> answered{false};
  std::string body;
  std::thread client([&] {
    auto c = FastCgiClient::connect(pool.address(), false);
    if (!c) return;
    auto r = c->request(hello);
    if (r) body = r->body();
    answered = true;
  });
  std::this_thread::sleep_for(3s);  // the worker is long gone; php-fpm would fork at once if it had seen the edge
  EXPECT_FALSE(answered) << "php-fpm answered by itself: the race was not hit, this test proves nothing";

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
