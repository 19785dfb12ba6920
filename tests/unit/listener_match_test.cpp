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

// A site user binds a same-named socket in a mount namespace of their own: same name, another file, their uid.
TEST(MatchUnixListener, KnowsThePoolsSocketByItsFileAndItsOwner) {
  auto listener = [](uint64_t cookie, uint64_t ino, uint32_t dev, uint32_t uid, const char* name) {
    UnixSocketInfo u;
    u.type = SOCK_STREAM;
    u.state = wire::kTcpListen;
    u.cookie = cookie;
    u.has_name = true;
    u.name = name;
    u.has_vfs = true;
    u.vfs_ino = ino;
    u.vfs_dev = dev;
    u.has_uid = true;
    u.uid = uid;
    return u;
  };
  // The impostor first: a name-only match would take it.
  std::vector<UnixSocketInfo> us{listener(1, 900, 35, 65534, "/run/php/a.sock"),
                                 listener(2, 500, 26, 0, "/run/php/a.sock")};
  auto a = *parse_socket_address("/run/php/a.sock");
  ListenerTrust trust{0, std::pair<uint64_t, uint32_t>{500, 26}};
  EXPECT_EQ(match_unix_listener(a, us, trust)->cookie, 2u);
  ListenerTrust gone{0, std::nullopt};  // nothing at that path in this mount namespace
  EXPECT_EQ(match_unix_listener(a, us, gone), nullptr) << "the impostor's socket is not taken for a missing one";
  ListenerTrust impostors_file{0, std::pair<uint64_t, uint32_t>{900, 35}};
  EXPECT_EQ(match_unix_listener(a, us, impostors_file), nullptr) << "a file a site user's socket owns is not trusted";
  // The same file under another name (/var/run is /run): the file decides.
  EXPECT_EQ(match_unix_listener(*parse_socket_address("/var/run/php/a.sock"), us, trust)->cookie, 2u);
  // A kernel that reports no files: the name, and the owner.
  for (auto& u : us) u.has_vfs = false;
  EXPECT_EQ(match_unix_listener(a, us, trust)->cookie, 2u);
}

TEST(MatchTcpListener, OnlyTheTrustedOwnersListener) {
  auto tcp = [](uint64_t cookie, uint32_t uid) {
    InetSocketInfo l;
    l.family = AF_INET;
    l.state = wire::kTcpListen;
    l.local_ip = v4_mapped(htonl(INADDR_LOOPBACK));
    l.local_port = 8888;
    l.cookie = cookie;
    l.uid = uid;
    return l;
  };
  std::vector<InetSocketInfo> ls{tcp(1, 1000), tcp(2, 0)};
  auto a = *parse_socket_address("127.0.0.1:8888");
  EXPECT_EQ(match_tcp_listener(a, ls, ListenerTrust{0, std::nullopt})->cookie, 2u);
  EXPECT_EQ(match_tcp_listener(a, std::vector<InetSocketInfo>{tcp(1, 1000)}, ListenerTrust{0, std::nullopt}), nullptr);
  EXPECT_EQ(match_tcp_listener(a, ls)->cookie, 1u) << "no trust asked for: the first";
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
