// sys::nudge against real sockets: a server that reacts to the edge of a new connection (epoll EPOLLET on its
// listening socket, as php-fpm's ondemand master does) and missed one sees a new edge, and its accept takes the
// stalled connection first. Unix and TCP, through the kernel; no root needed.
#include "idlepool/sys/nudge.h"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <string>

#include "idlepool/sys/unique_fd.h"

namespace idlepool::sys {
namespace {

struct Listener {
  UniqueFd fd;
  SocketAddress address;
};

Listener unix_listener(const std::string& path) {
  Listener l;
  l.fd.reset(::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  sockaddr_un un{};
  un.sun_family = AF_UNIX;
  std::strncpy(un.sun_path, path.c_str(), sizeof(un.sun_path) - 1);
  ::unlink(path.c_str());
  EXPECT_EQ(::bind(l.fd.get(), reinterpret_cast<sockaddr*>(&un), sizeof(un)), 0) << std::strerror(errno);
  EXPECT_EQ(::listen(l.fd.get(), 16), 0);
  l.address = *parse_socket_address(path);
  return l;
}

Listener tcp_listener() {
  Listener l;
  l.fd.reset(::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  sockaddr_in in{};
  in.sin_family = AF_INET;
  in.sin_addr.s_addr = htonl(INADDR_ANY);  // a wildcard: the nudge goes through 127.0.0.1
  EXPECT_EQ(::bind(l.fd.get(), reinterpret_cast<sockaddr*>(&in), sizeof(in)), 0);
  EXPECT_EQ(::listen(l.fd.get(), 16), 0);
  socklen_t len = sizeof(in);
  ::getsockname(l.fd.get(), reinterpret_cast<sockaddr*>(&in), &len);
  l.address = *parse_socket_address("0.0.0.0:" + std::to_string(ntohs(in.sin_port)));
  return l;
}

UniqueFd client_for(const Listener& l) {
  sockaddr_storage ss{};
  socklen_t len = 0;
  int family = l.address.is_unix() ? AF_UNIX : AF_INET;
  if (l.address.is_unix()) {
    auto* un = reinterpret_cast<sockaddr_un*>(&ss);
    un->sun_family = AF_UNIX;
    std::strncpy(un->sun_path, l.address.path.c_str(), sizeof(un->sun_path) - 1);
    len = sizeof(sockaddr_un);
  } else {
    auto* in = reinterpret_cast<sockaddr_in*>(&ss);
    in->sin_family = AF_INET;
    in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    in->sin_port = htons(l.address.port);
    len = sizeof(sockaddr_in);
  }
  UniqueFd c(::socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0));
  EXPECT_EQ(::connect(c.get(), reinterpret_cast<sockaddr*>(&ss), len), 0) << std::strerror(errno);
  return c;
}

int edges(int epoll_fd, int timeout_ms) {
  epoll_event ev[4];
  return ::epoll_wait(epoll_fd, ev, 4, timeout_ms);
}

void missed_edge_then_nudge(const Listener& l) {
  UniqueFd ep(::epoll_create1(EPOLL_CLOEXEC));
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLET;
  ASSERT_EQ(::epoll_ctl(ep.get(), EPOLL_CTL_ADD, l.fd.get(), &ev), 0);

  UniqueFd client = client_for(l);
  ASSERT_EQ(::write(client.get(), "request", 7), 7);
  ASSERT_EQ(edges(ep.get(), 1000), 1) << "the connection's edge";
  // The server skips it (php-fpm: "an idle worker will take it", and that worker exits). No new edge comes:
  EXPECT_EQ(edges(ep.get(), 200), 0) << "edge-triggered: the queued connection alone never wakes the server again";

  auto r = nudge(l.address);
  ASSERT_TRUE(r.ok()) << r.error().message;
  ASSERT_EQ(edges(ep.get(), 1000), 1) << "the nudge is a new edge";
  // The worker the server now makes accepts in order: the stalled connection first, then the nudge's (empty, closed).
  UniqueFd first(::accept4(l.fd.get(), nullptr, nullptr, SOCK_CLOEXEC));
  ASSERT_TRUE(first.valid());
  char buf[16] = {};
  EXPECT_EQ(::read(first.get(), buf, sizeof(buf)), 7);
  EXPECT_STREQ(buf, "request");
  UniqueFd second(::accept4(l.fd.get(), nullptr, nullptr, SOCK_CLOEXEC));
  ASSERT_TRUE(second.valid());
  EXPECT_EQ(::read(second.get(), buf, sizeof(buf)), 0) << "the nudge sends nothing and is closed";
}

TEST(Nudge, WakesAnEdgeTriggeredUnixServerThatMissedAConnection) {
  std::string path = "/tmp/idlepool-nudge-" + std::to_string(::getpid()) + ".sock";
  Listener l = unix_listener(path);
  missed_edge_then_nudge(l);
  ::unlink(path.c_str());
}

TEST(Nudge, WakesAnEdgeTriggeredTcpServerThroughLoopbackForAWildcardAddress) {
  Listener l = tcp_listener();
  missed_edge_then_nudge(l);
}

// The path is a name: between the probe's registration and a nudge, whoever can write the directory can put another
// socket there (a root-only one elsewhere, by a symlink, say). The nudge connects to the registered socket or not at
// all.
TEST(Nudge, ConnectsToThePoolsSocketFileOrNowhere) {
  std::string dir = "/tmp/idlepool-nudge-dir-" + std::to_string(::getpid());
  ::mkdir(dir.c_str(), 0755);
  Listener pool = unix_listener(dir + "/pool.sock");
  auto file = socket_file_at(pool.address.path);
  ASSERT_TRUE(file.has_value());
  auto ok = nudge(pool.address, std::chrono::milliseconds(500), file);
  ASSERT_TRUE(ok.ok()) << ok.error().message;
  UniqueFd taken(::accept4(pool.fd.get(), nullptr, nullptr, SOCK_CLOEXEC));
  EXPECT_TRUE(taken.valid()) << "the nudge reached the pool's socket through /proc/self/fd";
  // Someone swaps the name for a link to another socket: the nudge refuses, and that socket sees nothing.
  Listener other = unix_listener(dir + "/other.sock");
  ASSERT_EQ(::rename(pool.address.path.c_str(), (dir + "/moved.sock").c_str()), 0);
  ASSERT_EQ(::symlink((dir + "/other.sock").c_str(), pool.address.path.c_str()), 0);
  auto refused = nudge(pool.address, std::chrono::milliseconds(500), file);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code, ESTALE);
  EXPECT_NE(refused.error().message.find("no longer names the pool's socket"), std::string::npos);
  UniqueFd none(::accept4(other.fd.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK));
  EXPECT_FALSE(none.valid()) << "the nudge connected to a socket that is not the pool's";
  for (const char* n : {"/pool.sock", "/other.sock", "/moved.sock"}) ::unlink((dir + n).c_str());
  ::rmdir(dir.c_str());
}

TEST(Nudge, ErrorsNameTheAddress) {
  auto r = nudge(*parse_socket_address("/nonexistent/idlepool.sock"));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("/nonexistent/idlepool.sock"), std::string::npos) << r.error().message;
  Listener l = tcp_listener();
  SocketAddress closed = l.address;
  l.fd.reset();  // nothing listens there now
  auto refused = nudge(closed);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.error().message.find(closed.to_string()), std::string::npos) << refused.error().message;
}

}  // namespace
}  // namespace idlepool::sys
