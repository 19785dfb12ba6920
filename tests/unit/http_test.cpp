// The metrics endpoint's HTTP (wire::respond_http): what a scrape gets, what everything else gets, and that it waits
// for a whole request head but not for one that cannot be HTTP.
#include "idlepool/wire/http.h"

#include <gtest/gtest.h>

#include <string>

namespace idlepool::wire {
namespace {

struct Reply {
  std::string status;  // "200 OK"
  std::string head;
  std::string body;
};

Reply split(const std::string& raw) {
  Reply r;
  size_t eol = raw.find("\r\n");
  EXPECT_EQ(raw.rfind("HTTP/1.1 ", 0), 0u) << raw;
  r.status = raw.substr(9, eol - 9);
  size_t end = raw.find("\r\n\r\n");
  EXPECT_NE(end, std::string::npos) << raw;
  r.head = raw.substr(0, end + 2);
  r.body = raw.substr(end + 4);
  return r;
}

int calls = 0;
std::string text() {
  ++calls;
  return "idlepool_pools 3\n";
}

std::optional<std::string> respond(std::string_view in) { return respond_http(in, &text); }

TEST(Http, ScrapeGetsTheMetricsWithTheirLength) {
  calls = 0;
  auto out = respond("GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:10071\r\nAccept: text/plain\r\n\r\n");
  ASSERT_TRUE(out);
  auto r = split(*out);
  EXPECT_EQ(r.status, "200 OK");
  EXPECT_NE(r.head.find("Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"), std::string::npos) << r.head;
  EXPECT_NE(r.head.find("Content-Length: 17\r\n"), std::string::npos) << r.head;
  EXPECT_NE(r.head.find("Connection: close\r\n"), std::string::npos);
  EXPECT_EQ(r.body, "idlepool_pools 3\n");
  EXPECT_EQ(calls, 1);
}

TEST(Http, WaitsForTheWholeHeadAndBuildsNothingMeanwhile) {
  calls = 0;
  EXPECT_FALSE(respond(""));
  EXPECT_FALSE(respond("GET /metr"));
  EXPECT_FALSE(respond("GET /metrics HTTP/1.1\r\nHost: x\r\n"));
  EXPECT_EQ(calls, 0);
  EXPECT_TRUE(respond("GET /metrics HTTP/1.0\n\n")) << "bare LF line ends are taken";
}

TEST(Http, QueryAndAbsoluteFormStillReachMetrics) {
  EXPECT_EQ(split(*respond("GET /metrics?name[]=x HTTP/1.1\r\n\r\n")).status, "200 OK");
  EXPECT_EQ(split(*respond("GET http://host:10071/metrics HTTP/1.1\r\n\r\n")).status, "200 OK");
}

TEST(Http, HeadHasTheLengthButNoBody) {
  auto r = split(*respond("HEAD /metrics HTTP/1.1\r\n\r\n"));
  EXPECT_EQ(r.status, "200 OK");
  EXPECT_NE(r.head.find("Content-Length: 17\r\n"), std::string::npos);
  EXPECT_EQ(r.body, "");
}

TEST(Http, EverythingElseIsRefusedWithoutBuildingMetrics) {
  calls = 0;
  EXPECT_EQ(split(*respond("GET /metricsx HTTP/1.1\r\n\r\n")).status, "404 Not Found");
  EXPECT_EQ(split(*respond("GET /../metrics HTTP/1.1\r\n\r\n")).status, "404 Not Found");
  auto post = split(*respond("POST /metrics HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc"));
  EXPECT_EQ(post.status, "405 Method Not Allowed");
  EXPECT_NE(post.head.find("Allow: GET, HEAD\r\n"), std::string::npos);
  EXPECT_EQ(split(*respond("GET /metrics HTTP/2.0\r\n\r\n")).status, "505 HTTP Version Not Supported");
  EXPECT_EQ(split(*respond("GET /metrics\r\n\r\n")).status, "400 Bad Request") << "HTTP/0.9";
  EXPECT_EQ(split(*respond("GET  /metrics HTTP/1.1\r\n\r\n")).status, "400 Bad Request");
  EXPECT_EQ(split(*respond("GET metrics HTTP/1.1\r\n\r\n")).status, "400 Bad Request");
  EXPECT_EQ(split(*respond("G\x01T /metrics HTTP/1.1\r\n\r\n")).status, "400 Bad Request");
  EXPECT_EQ(calls, 0);
  auto root = split(*respond("GET / HTTP/1.1\r\n\r\n"));
  EXPECT_EQ(root.status, "200 OK");
  EXPECT_NE(root.body.find("/metrics"), std::string::npos);
}

TEST(Http, BytesThatCannotBeHttpAreRefusedAtOnce) {
  // A TLS ClientHello on the plain-text port, or a stray binary protocol: no need to wait for a head that never comes.
  auto tls = respond(std::string_view("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 11));
  ASSERT_TRUE(tls);
  EXPECT_EQ(split(*tls).status, "400 Bad Request");
  auto junk = respond(std::string_view("\0\0\0\0", 4));
  ASSERT_TRUE(junk);
  EXPECT_EQ(split(*junk).status, "400 Bad Request");
}

// With a token, per-site traffic is shown only to whoever holds it (Prometheus' credentials_file).
TEST(Http, ATokenKeepsTheMetricsToItsHolder) {
  const std::optional<std::string> token = "s3cret-token-0123456789";
  auto ask = [&](const std::string& extra) {
    calls = 0;
    auto out = respond_http("GET /metrics HTTP/1.1\r\nHost: x\r\n" + extra + "\r\n", &text, token);
    EXPECT_TRUE(out);
    return split(*out);
  };
  auto none = ask("");
  EXPECT_EQ(none.status, "401 Unauthorized");
  EXPECT_NE(none.head.find("WWW-Authenticate: Bearer realm=\"idlepool\"\r\n"), std::string::npos) << none.head;
  EXPECT_EQ(calls, 0) << "nothing is built for a refused scrape";
  EXPECT_EQ(ask("Authorization: Bearer wrong-token-0123456789\r\n").status, "401 Unauthorized");
  EXPECT_EQ(ask("Authorization: Bearer s3cret-token-012345678\r\n").status, "401 Unauthorized") << "a prefix";
  EXPECT_EQ(ask("Authorization: Basic czNjcmV0\r\n").status, "401 Unauthorized");
  EXPECT_EQ(ask("Authorization: Bearer\r\n").status, "401 Unauthorized");
  EXPECT_EQ(ask("X-Authorization: Bearer s3cret-token-0123456789\r\n").status, "401 Unauthorized");
  auto ok = ask("authorization:  bearer s3cret-token-0123456789 \r\n");
  EXPECT_EQ(ok.status, "200 OK") << "header name and scheme in any case, spaces around";
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(respond_http("GET / HTTP/1.1\r\n\r\n", &text, token).value_or("").rfind("HTTP/1.1 200", 0), 0u)
      << "only /metrics is kept";
}

TEST(Http, TooLongIsA431) {
  auto r = split(http_too_long());
  EXPECT_EQ(r.status, "431 Request Header Fields Too Large");
  EXPECT_NE(r.body.find(std::to_string(kMaxHttpRequest)), std::string::npos);
}

}  // namespace
}  // namespace idlepool::wire
