#include "listener_match.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <sys/socket.h>

namespace idlepool::sys {
namespace {

using wire::InetSocketInfo;
using wire::UnixSocketInfo;

InetSocketInfo tcp(const char* ip, uint16_t port, uint8_t state, uint64_t cookie, bool v6only = false) {
  auto a = parse_socket_address(std::string(ip[0] == '[' ? "" : "") + ip + ":" + std::to_string(port));
  EXPECT_TRUE(a.ok()) << ip;
  InetSocketInfo s;
  s.family = a->ipv4 ? AF_INET : AF_INET6;
  s.local_ip = a->ip;
  s.local_port = port;
  s.state = state;
  s.cookie = cookie;
  s.v6only = v6only;
  return s;
}

TEST(MatchTcpListener, PrefersExactThenWildcardThenDualStack) {
  std::vector<InetSocketInfo> ls{tcp("[::]", 8888, wire::kTcpListen, 1), tcp("0.0.0.0", 8888, wire::kTcpListen, 2),
                                 tcp("127.0.0.1", 8888, wire::kTcpListen, 3)};
  auto a = *parse_socket_address("127.0.0.1:8888");
  EXPECT_EQ(match_tcp_listener(a, ls)->cookie, 3u);
  ls.pop_back();
  EXPECT_EQ(match_tcp_listener(a, ls)->cookie, 2u);
  ls.pop_back();
  // systemd's ListenStream=8888 binds [::]:8888 dual-stack: it serves 127.0.0.1:8888.
  EXPECT_EQ(match_tcp_listener(a, ls)->cookie, 1u);
}

TEST(MatchTcpListener, V6OnlyWildcardDoesNotServeIpv4) {
  std::vector<InetSocketInfo> ls{tcp("[::]", 8888, wire::kTcpListen, 1, /*v6only=*/true)};
  EXPECT_EQ(match_tcp_listener(*parse_socket_address("127.0.0.1:8888"), ls), nullptr);
  EXPECT_EQ(match_tcp_listener(*parse_socket_address("[::1]:8888"), ls)->cookie, 1u);
}

TEST(MatchTcpListener, IgnoresOtherPortsAndNonListeners) {
  std::vector<InetSocketInfo> ls{tcp("127.0.0.1", 8889, wire::kTcpListen, 1),
                                 tcp("127.0.0.1", 8888, wire::kTcpEstablished, 2)};
  EXPECT_EQ(match_tcp_listener(*parse_socket_address("127.0.0.1:8888"), ls), nullptr);
}

TEST(MatchUnixListener, MatchesPathAndAbstractSeparately) {
  auto unix_socket = [](uint8_t state, uint64_t cookie, bool abstract) {
    UnixSocketInfo u;
    u.type = SOCK_STREAM;
    u.state = state;
    u.cookie = cookie;
    u.has_name = true;
    u.abstract = abstract;
    u.name = "/run/a.sock";
    return u;
  };
  std::vector<UnixSocketInfo> us{unix_socket(wire::kTcpEstablished, 1, false), unix_socket(wire::kTcpListen, 2, true),
                                 unix_socket(wire::kTcpListen, 3, false)};
  EXPECT_EQ(match_unix_listener(*parse_socket_address("/run/a.sock"), us)->cookie, 3u);
  EXPECT_EQ(match_unix_listener(*parse_socket_address("@/run/a.sock"), us)->cookie, 2u);
  EXPECT_EQ(match_unix_listener(*parse_socket_address("/run/b.sock"), us), nullptr);
}

TEST(AttributeTcpConnection, ExactListenerBeatsWildcard) {
  auto any = *parse_socket_address("0.0.0.0:80");
  auto lo = *parse_socket_address("127.0.0.1:80");
  std::vector<TcpListenerRef> refs{{any.ip, 80, true, true, false}, {lo.ip, 80, false, true, false}};
  EXPECT_EQ(attribute_tcp_connection(tcp("127.0.0.1", 80, wire::kTcpEstablished, 9), refs), 1);
  EXPECT_EQ(attribute_tcp_connection(tcp("10.0.0.1", 80, wire::kTcpEstablished, 9), refs), 0);
  EXPECT_EQ(attribute_tcp_connection(tcp("10.0.0.1", 81, wire::kTcpEstablished, 9), refs), -1);
}

TEST(AttributeTcpConnection, DualStackWildcardTakesMappedIpv4UnlessV6Only) {
  auto any6 = *parse_socket_address("[::]:80");
  std::vector<TcpListenerRef> refs{{any6.ip, 80, true, false, false}};
  auto mapped = tcp("[::ffff:127.0.0.1]", 80, wire::kTcpEstablished, 9);
  EXPECT_EQ(attribute_tcp_connection(mapped, refs), 0);
  EXPECT_EQ(attribute_tcp_connection(tcp("[::1]", 80, wire::kTcpEstablished, 9), refs), 0);
  refs[0].v6only = true;
  EXPECT_EQ(attribute_tcp_connection(mapped, refs), -1);
}

}  // namespace
}  // namespace idlepool::sys
