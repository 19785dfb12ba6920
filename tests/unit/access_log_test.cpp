// The simulator's inputs: access-log lines as nginx and Apache write them, timestamp lines, and garbage; and the
// state file that keeps the learnt rhythms across restarts.
#include "idlepool/wire/access_log.h"

#include <gtest/gtest.h>

#include "idlepool/wire/rhythm_state.h"

namespace idlepool::wire {
namespace {

using namespace std::chrono_literals;

TEST(AccessLog, NginxCombined) {
  // nginx's default `combined` (log_format combined '$remote_addr - $remote_user [$time_local] "$request" $status
  // $body_bytes_sent "$http_referer" "$http_user_agent"').
  auto e = parse_access_line(
      R"(203.0.113.7 - - [01/Dec/2026:11:26:50 +0000] "GET /wp-cron.php?doing_wp_cron=1796124410 HTTP/1.1" 200 0 "-" "WordPress/6.4.2; https://shop.example")");
  ASSERT_TRUE(e.ok()) << e.error().message;
  EXPECT_DOUBLE_EQ(e->time, 1796124410);
  EXPECT_EQ(e->path, "/wp-cron.php");
  EXPECT_EQ(e->vhost, "");
}

TEST(AccessLog, ApacheVhostCombinedWithAZoneAndEscapes) {
  auto e = parse_access_line(
      R"(shop.example:443 2001:db8::1 - alice [10/Oct/2000:13:55:36 -0700] "POST /a\"b/index.php HTTP/2.0" 302 - "https://x/" "curl/8")");
  ASSERT_TRUE(e.ok()) << e.error().message;
  EXPECT_DOUBLE_EQ(e->time, 971211336);  // 20:55:36 UTC
  EXPECT_EQ(e->vhost, "shop.example");
  EXPECT_EQ(e->path, "/a\"b/index.php");
}

TEST(AccessLog, ARequestLineThatIsNotOneKeepsItsTime) {
  auto e = parse_access_line(R"(198.51.100.2 - - [29/Feb/2024:00:00:00 +0000] "\x16\x03\x01\x02" 400 157 "-" "-")");
  ASSERT_TRUE(e.ok()) << e.error().message;
  EXPECT_DOUBLE_EQ(e->time, 1709164800);
  EXPECT_EQ(e->path, "");
  auto proxy =
      parse_access_line(R"(1.2.3.4 - - [29/Feb/2024:00:00:00 +0000] "GET http://x.example/p?q HTTP/1.1" 200 1)");
  ASSERT_TRUE(proxy.ok());
  EXPECT_EQ(proxy->path, "/p");
}

TEST(AccessLog, GarbageIsNamed) {
  struct Case {
    const char* line;
    const char* error;
  } cases[] = {
      {"", "no [time] field"},
      {"hello world", "no [time] field"},
      {"1.2.3.4 - - [01/Dec/2026:11:26:50 +0000", "not closed"},
      {"1.2.3.4 - [01/Dec/2026:11:26:50 +0000] \"GET / HTTP/1.1\"", "found 2"},
      {"1.2.3.4 - - [01/Foo/2026:11:26:50 +0000] \"GET / HTTP/1.1\"", "bad month 'Foo'"},
      {"1.2.3.4 - - [01/Dec/2026:25:26:50 +0000] \"GET / HTTP/1.1\"", "out of range"},
      {"1.2.3.4 - - [yesterday] \"GET / HTTP/1.1\"", "bad time"},
      {"1.2.3.4 - - [01/Dec/2026:11:26:50 +0000] 200", "no \"request\""},
      {"1.2.3.4 - - [01/Dec/2026:11:26:50 +0000] \"GET / HTTP/1.1", "not closed"},
  };
  for (const auto& c : cases) {
    auto e = parse_access_line(c.line);
    ASSERT_FALSE(e.ok()) << c.line;
    EXPECT_NE(e.error().message.find(c.error), std::string::npos) << c.line << ": " << e.error().message;
  }
}

TEST(Timestamps, TimeAndPoolPerLine) {
  auto t = parse_timestamp_line("1764588410.25 php8.2-fpm@shop.service\r\n");
  ASSERT_TRUE(t.ok());
  ASSERT_TRUE(t->has_value());
  EXPECT_DOUBLE_EQ((*t)->time, 1764588410.25);
  EXPECT_EQ((*t)->pool, "php8.2-fpm@shop.service");
  EXPECT_FALSE(parse_timestamp_line("  # comment")->has_value());
  EXPECT_FALSE(parse_timestamp_line("")->has_value());
  for (const char* bad : {"1764588410", "soon shop", "-5 shop", "nan shop", "1 shop extra"})
    EXPECT_FALSE(parse_timestamp_line(bad).ok()) << bad;
}

TEST(RhythmState, RoundTrip) {
  LearntRhythm r;
  r.silences.add(std::chrono::seconds(100));
  r.silences.add(std::chrono::seconds(5000));
  for (uint32_t s : {300u, 301u, 302u, 303u, 304u, 305u, 306u, 307u, 308u, 309u}) r.recent.add(std::chrono::seconds(s));
  std::map<std::string, LearntRhythm> in{{"php8.2-fpm@shop.service", r}, {"b.service", LearntRhythm{}}};
  auto out = decode_rhythms(encode_rhythms(in));
  ASSERT_TRUE(out.ok()) << out.error().message;
  ASSERT_EQ(out->size(), 2u);
  const auto& back = out->at("php8.2-fpm@shop.service");
  EXPECT_EQ(back.silences.counts, r.silences.counts);
  ASSERT_EQ(back.recent.count, kRecentGaps);
  // The ring keeps the last eight, oldest first: 302..309.
  std::vector<uint32_t> recent(back.recent.seconds.begin(), back.recent.seconds.end());
  std::sort(recent.begin(), recent.end());
  EXPECT_EQ(recent, (std::vector<uint32_t>{302, 303, 304, 305, 306, 307, 308, 309}));
}

TEST(RhythmState, CorruptOrForeignFilesAreRefusedWhole) {
  std::string ok_pool = R"("silences":[0,0,0,0,0,0,1,0,0,0,0,0,0,0,0,0,0,0])";
  struct Case {
    std::string text;
    const char* error;
  } cases[] = {
      {"", "not JSON"},
      {"{\"version\":1,\"pools\":{", "not JSON"},
      {"[]", "no \"version\""},
      {R"({"version":2,"pools":{}})", "version 2"},
      {R"({"version":1})", "no \"pools\""},
      {R"({"version":1,"pools":{"a.service":{"silences":[1,2]}}})", "array of 18 counts"},
      {R"({"version":1,"pools":{"a.service":{"silences":[0,0,0,0,0,0,70000,0,0,0,0,0,0,0,0,0,0,0]}}})",
       "from 0 to 65535"},
      {R"({"version":1,"pools":{"a.service":{)" + ok_pool + R"(,"recent":[1,2,3,4,5,6,7,8,9]}}})", "at most 8"},
      {R"({"version":1,"pools":{"a.service":{)" + ok_pool + R"(,"recent":[-1]}}})", "not seconds"},
      {R"({"version":1,"pools":{"":{)" + ok_pool + "}}}", "unit name of 0 bytes"},
  };
  for (const auto& c : cases) {
    auto r = decode_rhythms(c.text);
    ASSERT_FALSE(r.ok()) << c.text;
    EXPECT_NE(r.error().message.find(c.error), std::string::npos) << c.text << ": " << r.error().message;
  }
  EXPECT_TRUE(decode_rhythms(R"({"version":1,"pools":{"a.service":{)" + ok_pool + "}}}").ok()) << "recent optional";
}

}  // namespace
}  // namespace idlepool::wire
