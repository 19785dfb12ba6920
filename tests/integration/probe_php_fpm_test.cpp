// The probe against real php-fpm (Debian's php-fpm8.2), spoken to over FastCGI as nginx does: with and without
// kept-alive connections. php-fpm reads a request's final empty FCGI_STDIN record only after answering, which is
// what request counting must not mistake for a new request. Runs on the host (php-fpm is not in the QEMU guests).
#include <gtest/gtest.h>

#include <memory>
#include <thread>

#include "fastcgi_client.h"
#include "idlepool/sys/probe.h"
#include "php_fpm.h"
#include "test_server.h"

namespace idlepool::testing {
namespace {

class ProbeOnPhpFpm : public ::testing::TestWithParam<bool /*tcp*/> {};

TEST_P(ProbeOnPhpFpm, CountsEachFastCgiRequestOnceWithAndWithoutKeepAlive) {
  PhpFpmOptions options;
  options.pm = "ondemand";
  options.max_children = 2;
  options.tcp = GetParam();
  PhpFpmPool pool(options);
  std::string hello = pool.script("hello.php", "<?php echo 'hello';");
  auto probe = sys::Probe::load({});
  ASSERT_TRUE(probe.ok()) << probe.error().message;
  auto id = (*probe)->add(pool.address());
  ASSERT_TRUE(id.ok()) << id.error().message;

  for (int i = 0; i < 3; ++i) {  // like nginx's default: a connection per request, closed by php-fpm
    auto c = FastCgiClient::connect(pool.address(), false);
    ASSERT_TRUE(c.ok()) << c.error().message;
    auto r = c->request(hello);
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_EQ(r->body(), "hello");
  }
  {
    auto c = FastCgiClient::connect(pool.address(), true);  // fastcgi_keep_conn on
    ASSERT_TRUE(c.ok());
    for (int i = 0; i < 4; ++i) {
      auto r = c->request(hello);
      ASSERT_TRUE(r.ok()) << r.error().message;
      EXPECT_EQ(r->body(), "hello");
    }
  }
  sys::ListenerSnapshot last;
  bool settled = eventually([&] {
    auto snaps = (*probe)->read();
    if (!snaps || snaps->empty()) return false;
    last = snaps->front();
    return last.accepts == 4 && last.requests == 7u && last.active == 0;
  });
  EXPECT_TRUE(settled) << "accepts=" << last.accepts << " requests=" << (last.requests ? *last.requests : 0)
                       << " active=" << last.active << " (expected 4, 7, 0)";
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  auto again = (*probe)->read();
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->front().requests, 7u) << "counted more after settling";
}

INSTANTIATE_TEST_SUITE_P(Host, ProbeOnPhpFpm, ::testing::Values(false, true),
                         [](const auto& p) { return p.param ? std::string("tcp") : std::string("unix"); });

}  // namespace
}  // namespace idlepool::testing
