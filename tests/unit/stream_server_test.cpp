// The daemon's StreamServer (control socket, metrics endpoint) over real loopback TCP and unix sockets and the real
// event loop (sd-event): whole replies however large, errors for oversized requests, deadlines for clients that send
// nothing, a cap on clients and on one user's clients, clients that go away early, the sender's credentials. No root
// needed.
#include "stream_server.h"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <string>

#include "idlepool/sys/sock_diag.h"
#include "idlepool/wire/http.h"

namespace idlepool::daemon {
namespace {

using namespace std::chrono_literals;

// 127.0.0.1, any free port (parse_socket_address refuses port 0: no pool listens there).
SocketAddress loopback_any_port() {
  SocketAddress a;
  a.ip = v4_mapped(htonl(INADDR_LOOPBACK));
  a.ipv4 = true;
  return a;
}

struct Fixture {
  std::unique_ptr<EventLoop> loop = EventLoop::create().value();
  std::unique_ptr<StreamServer> server;
  uint16_t port = 0;
  bool reset = false;  // read_to_end() ended with an error (ECONNRESET) rather than the end of the stream

  explicit Fixture(StreamServer::Limits limits, StreamServer::Respond respond) {
    auto fd = listen_tcp(loopback_any_port());
    EXPECT_TRUE(fd) << fd.error().message;
    sockaddr_in in{};
    socklen_t len = sizeof(in);
    ::getsockname(fd->get(), reinterpret_cast<sockaddr*>(&in), &len);
    port = ntohs(in.sin_port);
    auto s = StreamServer::serve("test server", std::move(*fd), *loop, std::move(limits), std::move(respond));
    EXPECT_TRUE(s);
    server = std::move(*s);
  }

  // One iteration of the daemon's loop over what is ready.
  void pump(int timeout_ms = 50) { EXPECT_TRUE(loop->run_once(std::chrono::milliseconds(timeout_ms))); }

  // A replied client is drained, not closed on, until it closes its end (no reset).
  void expect_kept_until_the_client_closes(sys::UniqueFd& c) {
    pump();
    EXPECT_EQ(server->clients(), 1u) << "replied, and waiting for the client to close first";
    c.reset();
    pump();
    EXPECT_EQ(server->clients(), 0u);
  }

  sys::UniqueFd connect() {
    sys::UniqueFd c(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    sockaddr_in in{};
    in.sin_family = AF_INET;
    in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    in.sin_port = htons(port);
    int r = ::connect(c.get(), reinterpret_cast<sockaddr*>(&in), sizeof(in));
    EXPECT_TRUE(r == 0 || errno == EINPROGRESS) << std::strerror(errno);
    return c;
  }

  // Everything the server sends until it closes, pumping its loop meanwhile. nullopt: not closed within ~5 s.
  std::optional<std::string> read_to_end(int fd) {
    std::string out;
    for (int round = 0; round < 500; ++round) {
      pump(10);
      char buf[65536];
      for (;;) {
        ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
        if (n > 0) {
          out.append(buf, static_cast<size_t>(n));
          continue;
        }
        if (n == 0) return out;
        if (errno == EAGAIN) break;
        reset = true;
        return out;  // reset: what came is what there is
      }
    }
    return std::nullopt;
  }
};

StreamServer::Respond line_echo(std::string body) {
  return [body = std::move(body)](std::string_view in, const Peer&) -> std::optional<std::string> {
    if (in.find('\n') == std::string_view::npos) return std::nullopt;
    return body;
  };
}

TEST(StreamServer, WholeReplyEvenWhenItFillsTheSocket) {
  std::string big(8 << 20, 'x');  // far more than a socket buffer: sent over many EPOLLOUT rounds
  Fixture f({}, line_echo(big));
  auto c = f.connect();
  f.pump();
  ASSERT_EQ(::send(c.get(), "hello\n", 6, MSG_NOSIGNAL), 6);
  auto got = f.read_to_end(c.get());
  ASSERT_TRUE(got);
  EXPECT_EQ(got->size(), big.size());
  EXPECT_EQ(*got, big);
  f.expect_kept_until_the_client_closes(c);
}

TEST(StreamServer, RequestSentInPiecesIsAnsweredOnceWhole) {
  int calls = 0;
  Fixture f({}, [&](std::string_view in, const Peer&) -> std::optional<std::string> {
    ++calls;
    if (in.find('\n') == std::string_view::npos) return std::nullopt;
    return std::string("got ") + std::string(in);
  });
  auto c = f.connect();
  f.pump();
  ASSERT_EQ(::send(c.get(), "par", 3, MSG_NOSIGNAL), 3);
  f.pump();
  f.pump();
  ASSERT_EQ(::send(c.get(), "ts\n", 3, MSG_NOSIGNAL), 3);
  auto got = f.read_to_end(c.get());
  ASSERT_TRUE(got);
  EXPECT_EQ(*got, "got parts\n");
  EXPECT_GE(calls, 2);
}

TEST(StreamServer, BytesSentAfterTheRequestAreDrainedNotReset) {
  Fixture f({}, line_echo("reply\n"));
  auto c = f.connect();
  f.pump();
  // More after the request, already queued when the reply is sent: closing with it unread would reset the
  // connection (and a reset can drop a reply the client has not read yet). It is drained instead.
  std::string sent = "q\n" + std::string(100000, 'm');
  ASSERT_GT(::send(c.get(), sent.data(), sent.size(), MSG_NOSIGNAL), 4096);
  auto got = f.read_to_end(c.get());
  ASSERT_TRUE(got);
  EXPECT_EQ(*got, "reply\n");
  EXPECT_FALSE(f.reset) << "the connection ended with a reset, not with the end of the stream";
  f.expect_kept_until_the_client_closes(c);
}

TEST(StreamServer, OversizedRequestGetsTheTooLongReply) {
  StreamServer::Limits limits;
  limits.max_request = 1000;
  limits.too_long = "too long\n";
  Fixture f(limits, line_echo("never\n"));
  auto c = f.connect();
  f.pump();
  std::string junk(5000, 'a');
  ASSERT_EQ(::send(c.get(), junk.data(), junk.size(), MSG_NOSIGNAL), 5000);
  auto got = f.read_to_end(c.get());
  ASSERT_TRUE(got);
  EXPECT_EQ(*got, "too long\n");
}

TEST(StreamServer, SilentClientIsClosedAtItsDeadline) {
  StreamServer::Limits limits;
  limits.deadline = 300ms;
  Fixture f(limits, line_echo("x\n"));
  auto c = f.connect();
  f.pump();
  ASSERT_EQ(f.server->clients(), 1u);
  auto start = EventLoop::now();
  while (f.server->clients() > 0 && EventLoop::now() - start < 5s) f.pump(100);
  EXPECT_EQ(f.server->clients(), 0u);
  EXPECT_GE(EventLoop::now() - start, 250ms) << "not before its deadline";
  char b;
  EXPECT_EQ(::recv(c.get(), &b, 1, 0), 0) << "the client sees the end of the stream";
}

// One user cannot take every slot: their oldest connection goes when they open one too many.
TEST(StreamServer, OneUserCannotHoldEverySlot) {
  StreamServer::Limits limits;
  limits.max_clients = 10;
  limits.max_per_user = 3;
  Fixture f(limits, line_echo("x\n"));
  std::vector<sys::UniqueFd> mine;
  for (int i = 0; i < 5; ++i) {
    mine.push_back(f.connect());
    f.pump();
  }
  EXPECT_EQ(f.server->clients(), 3u) << "TCP peers of unknown uid count as one user";
  auto got = f.read_to_end(mine[0].get());
  ASSERT_TRUE(got);
  EXPECT_EQ(*got, "") << "the oldest was closed without a reply";
  ASSERT_EQ(::send(mine[4].get(), "q\n", 2, MSG_NOSIGNAL), 2);
  EXPECT_EQ(f.read_to_end(mine[4].get()).value_or("?"), "x\n") << "the newest is served";
}

// Over loopback TCP the peer's uid comes from sock_diag (the client's socket is on this host): a local user who opens
// many connections loses their own oldest, never someone else's.
TEST(StreamServer, LocalTcpPeersAreKnownByTheirUid) {
  StreamServer::Limits limits;
  limits.max_per_user = 2;
  limits.identify = [](int fd) {
    Peer p;
    p.uid = sys::local_tcp_peer_uid(fd);
    return p;
  };
  std::optional<uint32_t> seen;
  Fixture f(limits, [&](std::string_view in, const Peer& p) -> std::optional<std::string> {
    seen = p.uid;
    return in.find('\n') == std::string_view::npos ? std::nullopt : std::optional<std::string>("x\n");
  });
  auto mine = f.connect();
  f.pump();
  ASSERT_EQ(::send(mine.get(), "q\n", 2, MSG_NOSIGNAL), 2);
  EXPECT_EQ(f.read_to_end(mine.get()).value_or("?"), "x\n");
  ASSERT_TRUE(seen.has_value()) << "the local peer's uid was not found";
  EXPECT_EQ(*seen, ::getuid());
  if (::getuid() != 0) GTEST_SKIP() << "another user's connections need root to make";
  mine.reset();
  f.pump();
  // nobody opens three; root's stays.
  auto root_conn = f.connect();
  f.pump();
  int ready[2];
  ASSERT_EQ(::pipe(ready), 0);
  pid_t child = fork();
  if (child == 0) {
    if (setgid(65534) != 0 || setuid(65534) != 0) _exit(1);
    std::vector<sys::UniqueFd> held;
    for (int i = 0; i < 3; ++i) held.push_back(f.connect());
    (void)!::write(ready[1], "k", 1);
    pause();
    _exit(0);
  }
  char k;
  ASSERT_EQ(::read(ready[0], &k, 1), 1);
  for (int i = 0; i < 10 && f.server->clients() < 3; ++i) f.pump(50);
  f.pump(50);
  EXPECT_EQ(f.server->clients(), 3u) << "root's one and nobody's newest two";
  ASSERT_EQ(::send(root_conn.get(), "q\n", 2, MSG_NOSIGNAL), 2);
  EXPECT_EQ(f.read_to_end(root_conn.get()).value_or("?"), "x\n") << "root's connection was kept";
  ::kill(child, SIGKILL);
  ::waitpid(child, nullptr, 0);
}

TEST(StreamServer, UnixClientsComeWithTheirCredentials) {
  auto loop = EventLoop::create().value();
  std::string path = "/tmp/idlepool-stream-" + std::to_string(::getpid()) + ".sock";
  ::unlink(path.c_str());
  sys::UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  sockaddr_un sun{};
  sun.sun_family = AF_UNIX;
  std::snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path.c_str());
  ASSERT_EQ(::bind(fd.get(), reinterpret_cast<sockaddr*>(&sun), sizeof(sun)), 0);
  ASSERT_EQ(::listen(fd.get(), 4), 0);
  std::optional<Peer> seen;
  auto server = StreamServer::serve("unix", std::move(fd), *loop, {}, [&](std::string_view in, const Peer& p) {
    seen = p;
    return in.find('\n') == std::string_view::npos ? std::nullopt : std::optional<std::string>("ok\n");
  });
  ASSERT_TRUE(server);
  sys::UniqueFd c(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  ASSERT_EQ(::connect(c.get(), reinterpret_cast<sockaddr*>(&sun), sizeof(sun)), 0);
  ASSERT_EQ(::send(c.get(), "hi\n", 3, MSG_NOSIGNAL), 3);
  for (int i = 0; i < 20 && !seen; ++i) ASSERT_TRUE(loop->run_once(50ms));
  ASSERT_TRUE(seen);
  EXPECT_EQ(seen->uid, ::getuid());
  EXPECT_EQ(seen->pid, ::getpid());
  server->reset();
  ::unlink(path.c_str());
}

TEST(StreamServer, ClientsBeyondTheCapAreClosedOnAccept) {
  StreamServer::Limits limits;
  limits.max_clients = 2;
  Fixture f(limits, line_echo("x\n"));
  auto a = f.connect();
  auto b = f.connect();
  f.pump();
  f.pump();
  ASSERT_EQ(f.server->clients(), 2u);
  auto extra = f.connect();
  f.pump();
  EXPECT_EQ(f.server->clients(), 2u);
  auto got = f.read_to_end(extra.get());
  ASSERT_TRUE(got);
  EXPECT_EQ(*got, "") << "closed without a reply";
  // The two admitted still get theirs.
  ASSERT_EQ(::send(a.get(), "q\n", 2, MSG_NOSIGNAL), 2);
  EXPECT_EQ(f.read_to_end(a.get()).value_or("?"), "x\n");
}

TEST(StreamServer, ClientThatLeavesEarlyIsForgotten) {
  Fixture f({}, line_echo("x\n"));
  {
    auto c = f.connect();
    f.pump();
    ASSERT_EQ(::send(c.get(), "half", 4, MSG_NOSIGNAL), 4);
    f.pump();
    ASSERT_EQ(f.server->clients(), 1u);
  }
  f.pump();
  EXPECT_EQ(f.server->clients(), 0u);
}

TEST(StreamServer, ServesHttpScrapes) {
  StreamServer::Limits limits;
  limits.max_request = wire::kMaxHttpRequest;
  limits.too_long = wire::http_too_long();
  Fixture f(limits, [](std::string_view in, const Peer&) {
    return wire::respond_http(in, [] { return std::string("up 1\n"); });
  });
  auto c = f.connect();
  f.pump();
  std::string req = "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n";
  ASSERT_EQ(::send(c.get(), req.data(), req.size(), MSG_NOSIGNAL), static_cast<ssize_t>(req.size()));
  auto got = f.read_to_end(c.get());
  ASSERT_TRUE(got);
  EXPECT_EQ(got->rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << *got;
  EXPECT_EQ(got->substr(got->size() - 5), "up 1\n");
}

TEST(StreamServer, ListenTcpNamesTheAddressItCannotBind) {
  auto first = listen_tcp(loopback_any_port());
  ASSERT_TRUE(first);
  sockaddr_in in{};
  socklen_t len = sizeof(in);
  ::getsockname(first->get(), reinterpret_cast<sockaddr*>(&in), &len);
  std::string taken = "127.0.0.1:" + std::to_string(ntohs(in.sin_port));
  auto second = listen_tcp(*parse_socket_address(taken));
  ASSERT_FALSE(second);
  EXPECT_NE(second.error().message.find(taken), std::string::npos) << second.error().message;
  EXPECT_FALSE(listen_tcp(*parse_socket_address("/run/x.sock")));
}

}  // namespace
}  // namespace idlepool::daemon
