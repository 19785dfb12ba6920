#include "idlepool/core/php_fpm.h"

#include <gtest/gtest.h>

namespace idlepool {
namespace {

// Debian 12's /etc/php/8.2/fpm/php-fpm.conf (comments trimmed) and pool.d/www.conf, as shipped.
const char* kDebianMain = R"(;;;;;;;;;;;;;;;;;;;;;
; FPM Configuration ;
;;;;;;;;;;;;;;;;;;;;;
[global]
pid = /run/php/php8.2-fpm.pid
error_log = /var/log/php8.2-fpm.log
;process_control_timeout = 0
include=/etc/php/8.2/fpm/pool.d/*.conf
)";
const char* kDebianWww = R"([www]
user = www-data
group = www-data
listen = /run/php/php8.2-fpm.sock
listen.owner = www-data
pm = dynamic
)";

TEST(PhpFpmConfig, ReadsDebiansConfigurationAndItsIncludes) {
  auto main = parse_php_fpm_config(kDebianMain, "php-fpm.conf");
  ASSERT_TRUE(main.ok()) << main.error().message;
  EXPECT_EQ(main->includes, std::vector<std::string>{"/etc/php/8.2/fpm/pool.d/*.conf"});
  EXPECT_FALSE(main->process_control_timeout_s.has_value());
  auto www = parse_php_fpm_config(kDebianWww, "www.conf");
  ASSERT_TRUE(www.ok());
  merge_php_fpm_config(*main, *www);
  ASSERT_EQ(main->pools.size(), 1u);
  EXPECT_EQ(main->pools[0].pool, "www");
  EXPECT_EQ(main->pools[0].listen, "/run/php/php8.2-fpm.sock");
  EXPECT_EQ(main->pools[0].pm, "dynamic");
}

TEST(PhpFpmConfig, ExpandsPoolNamesQuotesAndTimes) {
  auto c = parse_php_fpm_config(
      "[global]\nprocess_control_timeout = 10s\n[site]\nlisten = \"/run/php/$pool.sock.inherited\"\n"
      "# comment\n[other]\nlisten=127.0.0.1:8888\n",
      "x.conf");
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_EQ(c->process_control_timeout_s, 10);
  ASSERT_EQ(c->pools.size(), 2u);
  EXPECT_EQ(c->pools[0].listen, "/run/php/site.sock.inherited");
  EXPECT_EQ(c->pools[1].listen, "127.0.0.1:8888");
  EXPECT_EQ(*parse_php_fpm_seconds("2m"), 120);
  EXPECT_FALSE(parse_php_fpm_seconds("soon").ok());
}

TEST(PhpFpmConfig, ErrorsNameFileAndLine) {
  auto bad = parse_php_fpm_config("[global]\n\n[broken\n", "/etc/php/x.conf");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message.find("/etc/php/x.conf:3: section header without ']'"), std::string::npos)
      << bad.error().message;
  auto novalue = parse_php_fpm_config("[www]\nlisten\n", "y.conf");
  ASSERT_FALSE(novalue.ok());
  EXPECT_NE(novalue.error().message.find("y.conf:2: expected 'key = value'"), std::string::npos);
  auto badtime = parse_php_fpm_config("[global]\nprocess_control_timeout = x\n", "z.conf");
  ASSERT_FALSE(badtime.ok());
  EXPECT_NE(badtime.error().message.find("z.conf:2: process_control_timeout"), std::string::npos);
}

PhpFpmConfig pool_listening(const std::string& listen, std::optional<int> pct) {
  PhpFpmConfig c;
  c.pools.push_back({"site", listen, "ondemand"});
  c.process_control_timeout_s = pct;
  return c;
}

TEST(StopSafety, TheNaiveUnixPoolIsUnsafe) {
  StopSafetyInput in;
  in.socket_unix_paths = {"/run/php/site.sock"};
  in.fpm = pool_listening("/run/php/site.sock", 10);
  in.kill_signal = 3;
  auto s = assess_php_fpm(in);
  ASSERT_TRUE(s.unsafe.has_value());
  EXPECT_NE(s.unsafe->find("php-fpm pool [site] listens on /run/php/site.sock, the socket unit's own path"),
            std::string::npos);
  EXPECT_TRUE(s.warnings.empty());
}

TEST(StopSafety, TheAliasNameIsSafe) {
  StopSafetyInput in;
  in.socket_unix_paths = {"/run/php/site.sock"};
  in.fpm = pool_listening("/run/php/site.sock.inherited", 10);
  in.kill_signal = 3;
  auto s = assess_php_fpm(in);
  EXPECT_FALSE(s.unsafe.has_value());
  EXPECT_TRUE(s.warnings.empty());
}

TEST(StopSafety, WarnsOfSigtermAndAZeroControlTimeout) {
  StopSafetyInput in;
  in.fpm = pool_listening("127.0.0.1:8888", std::nullopt);
  in.kill_signal = 15;
  auto s = assess_php_fpm(in);
  EXPECT_FALSE(s.unsafe.has_value()) << "TCP pools are not affected by the unlink";
  ASSERT_EQ(s.warnings.size(), 2u);
  EXPECT_NE(s.warnings[0].find("KillSignal=SIGQUIT"), std::string::npos);
  EXPECT_NE(s.warnings[1].find("process_control_timeout is 0"), std::string::npos);
}

TEST(StopSafety, AnUnreadableConfigurationIsUnsafeForUnixSocketsOnly) {
  StopSafetyInput unix_in;
  unix_in.socket_unix_paths = {"/run/php/a.sock"};
  unix_in.fpm_config_problem = "cannot open /etc/php/x.conf";
  auto u = assess_php_fpm(unix_in);
  ASSERT_TRUE(u.unsafe.has_value());
  EXPECT_NE(u.unsafe->find("cannot open /etc/php/x.conf"), std::string::npos);
  StopSafetyInput tcp_in;
  EXPECT_FALSE(assess_php_fpm(tcp_in).unsafe.has_value());
}

}  // namespace
}  // namespace idlepool
