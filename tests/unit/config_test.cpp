#include "idlepool/core/config.h"

#include <gtest/gtest.h>

namespace idlepool {
namespace {

using namespace std::chrono_literals;

TEST(Config, Durations) {
  EXPECT_EQ(*parse_duration("300"), 300s);
  EXPECT_EQ(*parse_duration("45s"), 45s);
  EXPECT_EQ(*parse_duration("5m"), 300s);
  EXPECT_EQ(*parse_duration("2h"), 7200s);
  EXPECT_EQ(*parse_duration("1d"), 86400s);
  for (const char* bad : {"", "m", "-5", "5 m", "five", "5x", "400d"}) {
    auto r = parse_duration(bad);
    EXPECT_FALSE(r.ok()) << bad;
  }
  EXPECT_NE(parse_duration("five").error().message.find("'five' is not a duration"), std::string::npos);
}

TEST(Config, PerPoolSettingsOverrideTheGlobalOnes) {
  DaemonConfig c;
  c.defaults.idle_timeout = 300s;
  c.pools["php8.2-fpm@a.service"].idle_timeout = 60s;
  c.pools["php8.2-fpm@b.service"].pin = true;
  c.pinned = {"php8.2-fpm@c.service"};
  EXPECT_EQ(c.policy_for("php8.2-fpm@a.service").idle_timeout, 60s);
  EXPECT_FALSE(c.policy_for("php8.2-fpm@a.service").pinned);
  EXPECT_TRUE(c.policy_for("php8.2-fpm@b.service").pinned);
  EXPECT_EQ(c.policy_for("php8.2-fpm@b.service").idle_timeout, 300s);
  EXPECT_TRUE(c.policy_for("php8.2-fpm@c.service").pinned);
  EXPECT_FALSE(c.policy_for("other.service").pinned);
}

TEST(Config, ValidationNamesTheSetting) {
  EXPECT_TRUE(validate(DaemonConfig{}).ok());
  auto bad = [](void (*edit)(DaemonConfig&), const char* says) {
    DaemonConfig config;
    edit(config);
    auto r = validate(config);
    ASSERT_FALSE(r.ok()) << says;
    EXPECT_NE(r.error().message.find(says), std::string::npos) << r.error().message;
  };
  bad([](DaemonConfig& x) { x.defaults.idle_timeout = 0s; }, "idle-timeout must be at least 1s");
  bad([](DaemonConfig& x) { x.max_stops_per_second = 0; }, "max-stops-per-second");
  bad([](DaemonConfig& x) { x.log_level = "loud"; }, "log-level 'loud'");
  bad([](DaemonConfig& x) { x.probe_tier = "kprobe"; }, "probe-tier 'kprobe'");
  bad([](DaemonConfig& x) { x.pools["site"].pin = true; }, "[pool site] is not a unit name");
  bad(
      [](DaemonConfig& x) {
        x.unit_patterns.clear();
        x.units.clear();
      },
      "nothing to manage");
}

TEST(Config, UnitPatternsMatchLikeSystemd) {
  EXPECT_TRUE(unit_matches("php*-fpm@*.service", "php8.2-fpm@site.service"));
  EXPECT_TRUE(unit_matches("php*-fpm@*.service", "php-fpm@site.service"));
  EXPECT_FALSE(unit_matches("php*-fpm@*.service", "php8.2-fpm.service"));
  EXPECT_FALSE(unit_matches("php*-fpm@*.service", "php8.2-fpm@site.socket"));
}

}  // namespace
}  // namespace idlepool
