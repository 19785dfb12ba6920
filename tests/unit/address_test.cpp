#include "idlepool/core/address.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>

namespace idlepool {
namespace {

TEST(SocketAddress, ParsesIpv4) {
  auto a = parse_socket_address("127.0.0.1:8888");
  ASSERT_TRUE(a.ok()) << a.error().message;
  EXPECT_TRUE(a->is_tcp());
  EXPECT_TRUE(a->ipv4);
  EXPECT_EQ(a->port, 8888);
  EXPECT_EQ(a->ip, v4_mapped(htonl(0x7f000001)));
  EXPECT_EQ(a->to_string(), "127.0.0.1:8888");
  EXPECT_FALSE(a->is_wildcard());
}

TEST(SocketAddress, ParsesIpv6InBrackets) {
  auto a = parse_socket_address("[::1]:9000");
  ASSERT_TRUE(a.ok()) << a.error().message;
  EXPECT_FALSE(a->ipv4);
  EXPECT_EQ(a->port, 9000);
  EXPECT_EQ(a->ip[15], 1);
  EXPECT_EQ(a->to_string(), "[::1]:9000");
}

TEST(SocketAddress, RecognisesWildcards) {
  EXPECT_TRUE(parse_socket_address("0.0.0.0:80")->is_wildcard());
  EXPECT_TRUE(parse_socket_address("[::]:80")->is_wildcard());
}

TEST(SocketAddress, ParsesUnixPathsAndAbstractNames) {
  auto p = parse_socket_address("/run/php/site.sock");
  ASSERT_TRUE(p.ok());
  EXPECT_TRUE(p->is_unix());
  EXPECT_FALSE(p->abstract);
  EXPECT_EQ(p->path, "/run/php/site.sock");
  EXPECT_EQ(p->to_string(), "/run/php/site.sock");
  auto a = parse_socket_address("@idlepool-test");
  ASSERT_TRUE(a.ok());
  EXPECT_TRUE(a->abstract);
  EXPECT_EQ(a->path, "idlepool-test");
  EXPECT_EQ(a->to_string(), "@idlepool-test");
}

struct BadAddress {
  const char* text;
  const char* says;
};

class SocketAddressErrors : public testing::TestWithParam<BadAddress> {};

TEST_P(SocketAddressErrors, NameTheTextAndTheProblem) {
  auto r = parse_socket_address(GetParam().text);
  ASSERT_FALSE(r.ok()) << GetParam().text << " parsed";
  EXPECT_NE(r.error().message.find("'" + std::string(GetParam().text) + "'"), std::string::npos) << r.error().message;
  EXPECT_NE(r.error().message.find(GetParam().says), std::string::npos) << r.error().message;
}

INSTANTIATE_TEST_SUITE_P(
    Table, SocketAddressErrors,
    testing::Values(BadAddress{"", "empty"}, BadAddress{"8888", "expected HOST:PORT"},
                    BadAddress{"127.0.0.1:", "missing port"}, BadAddress{"127.0.0.1:0", "out of range"},
                    BadAddress{"127.0.0.1:65536", "out of range"}, BadAddress{"127.0.0.1:80x", "not a number"},
                    BadAddress{"localhost:80", "not an IPv4 address"}, BadAddress{"::1:80", "in brackets"},
                    BadAddress{"[::1]80", "missing ':PORT'"}, BadAddress{"[::1:80", "missing ']'"},
                    BadAddress{"[zz]:80", "not an IPv6 address"}, BadAddress{"@", "empty"},
                    BadAddress{
                        "/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
                        "aaaaaaaaaaaaaaaaaaaaa",
                        "longer than 107 bytes"}));

}  // namespace
}  // namespace idlepool
