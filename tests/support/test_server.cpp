#include "test_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <stdexcept>
#include <thread>

namespace idlepool::testing {
namespace {

[[noreturn]] void die(const char* what) {
  std::fprintf(stderr, "test server: %s: %s\n", what, std::strerror(errno));
  std::abort();
}

bool read_line(int fd, std::string& carry) {
  char buf[256];
  while (carry.find('\n') == std::string::npos) {
    ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    carry.append(buf, static_cast<size_t>(n));
  }
  carry.erase(0, carry.find('\n') + 1);
  return true;
}

bool write_all(int fd, const char* data, size_t len) {
  while (len > 0) {
    ssize_t n = ::write(fd, data, len);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data += n;
    len -= static_cast<size_t>(n);
  }
  return true;
}

[[noreturn]] void worker_loop(int listener) {
  for (;;) {
    int c = ::accept(listener, nullptr, nullptr);
    if (c < 0) {
      if (errno == EINTR) continue;
      _exit(1);
    }
    std::string carry;
    while (read_line(c, carry))
      if (!write_all(c, "RESP\n", 5)) break;
    ::close(c);
  }
}

}  // namespace

std::string to_string(Family f) {
  switch (f) {
    case Family::kTcp4:
      return "tcp4";
    case Family::kTcp6:
      return "tcp6";
    case Family::kUnix:
      return "unix";
  }
  return "?";
}

TestServer::TestServer(Family family, int backlog) : family_(family), backlog_(backlog) {
  if (family_ == Family::kUnix) {
    char tmpl[] = "/tmp/idlepool-test-XXXXXX";
    if (!mkdtemp(tmpl)) die("mkdtemp");
    dir_ = tmpl;
  }
  open_listener();
}

void TestServer::open_listener() {
  int domain = family_ == Family::kTcp4 ? AF_INET : family_ == Family::kTcp6 ? AF_INET6 : AF_UNIX;
  sys::UniqueFd fd(::socket(domain, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) die("socket");
  int one = 1;
  if (family_ == Family::kUnix) {
    sockaddr_un sun{};
    sun.sun_family = AF_UNIX;
    std::string path = dir_ + "/pool.sock";
    std::snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path.c_str());
    ::unlink(path.c_str());
    if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&sun), sizeof(sun)) != 0) die("bind unix");
    address_ = *parse_socket_address(path);
  } else if (family_ == Family::kTcp4) {
    setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    sockaddr_in sin{};
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sin.sin_port = address_.is_tcp() ? htons(address_.port) : 0;
    if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&sin), sizeof(sin)) != 0) die("bind tcp4");
    socklen_t len = sizeof(sin);
    getsockname(fd.get(), reinterpret_cast<sockaddr*>(&sin), &len);
    address_ = *parse_socket_address("127.0.0.1:" + std::to_string(ntohs(sin.sin_port)));
  } else {
    setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    sockaddr_in6 sin6{};
    sin6.sin6_family = AF_INET6;
    sin6.sin6_addr = in6addr_loopback;
    sin6.sin6_port = address_.is_tcp() ? htons(address_.port) : 0;
    if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&sin6), sizeof(sin6)) != 0) die("bind tcp6");
    socklen_t len = sizeof(sin6);
    getsockname(fd.get(), reinterpret_cast<sockaddr*>(&sin6), &len);
    address_ = *parse_socket_address("[::1]:" + std::to_string(ntohs(sin6.sin6_port)));
  }
  if (::listen(fd.get(), backlog_) != 0) die("listen");
  listener_ = std::move(fd);
}

// Whether worker `pid` is waiting in its loop: blocked in accept(), or in read() on a connection it took already
// (from /proc/PID/syscall, whose first field is the syscall it sleeps in).
static bool waiting_in_its_loop(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/syscall");
  std::string nr;
  if (!(in >> nr)) return false;
  for (long call : {SYS_accept, SYS_accept4, SYS_read})
    if (nr == std::to_string(call)) return true;
  return false;
}

void TestServer::start_workers(int workers) {
  int ready[2];
  if (pipe2(ready, O_CLOEXEC) != 0) die("pipe");
  pid_t master = fork();
  if (master < 0) die("fork");
  if (master == 0) {
    setpgid(0, 0);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    // Keep only this server's listener (and the ready pipe): other servers' listeners must close when they do.
    for (int fd = 3; fd < 4096; ++fd)
      if (fd != listener_.get() && fd != ready[1]) ::close(fd);
    for (int i = 0; i < workers; ++i) {
      pid_t w = fork();
      if (w < 0) _exit(1);
      if (w == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        ::close(ready[1]);
        worker_loop(listener_.get());
      }
      (void)!::write(ready[1], &w, sizeof(w));  // the parent waits for each to block in accept()
    }
    ::close(ready[1]);
    for (;;) pause();
  }
  setpgid(master, master);
  ::close(ready[1]);
  std::vector<pid_t> pids;
  for (pid_t w; ::read(ready[0], &w, sizeof(w)) == static_cast<ssize_t>(sizeof(w));) pids.push_back(w);
  ::close(ready[0]);
  masters_.push_back(master);
  if (static_cast<int>(pids.size()) != workers) die("the master could not fork its workers");
  // As a running pool's workers are: blocked in accept() (or in read() on a connection waiting for them).
  for (pid_t w : pids)
    if (!eventually([w] { return waiting_in_its_loop(w); }, std::chrono::seconds(10)))
      die("a worker never reached accept()");
}

void TestServer::stop_workers() {
  for (pid_t m : masters_) {
    ::kill(-m, SIGKILL);
    ::waitpid(m, nullptr, 0);
  }
  masters_.clear();
}

void TestServer::close_listener() {
  listener_.reset();
  if (family_ == Family::kUnix) ::unlink(address_.path.c_str());
}

void TestServer::relisten() {
  close_listener();
  open_listener();
}

TestServer::~TestServer() {
  stop_workers();
  close_listener();
  if (!dir_.empty()) ::rmdir(dir_.c_str());
}

Client::Client(const SocketAddress& address) {
  if (address.is_unix()) {
    fd_.reset(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_un sun{};
    sun.sun_family = AF_UNIX;
    std::snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", address.path.c_str());
    if (::connect(fd_.get(), reinterpret_cast<sockaddr*>(&sun), sizeof(sun)) != 0) die("connect unix");
    return;
  }
  if (address.ipv4) {
    fd_.reset(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in sin{};
    sin.sin_family = AF_INET;
    std::memcpy(&sin.sin_addr, &address.ip[12], 4);
    sin.sin_port = htons(address.port);
    if (::connect(fd_.get(), reinterpret_cast<sockaddr*>(&sin), sizeof(sin)) != 0) die("connect tcp4");
    return;
  }
  fd_.reset(::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in6 sin6{};
  sin6.sin6_family = AF_INET6;
  std::memcpy(&sin6.sin6_addr, address.ip.data(), 16);
  sin6.sin6_port = htons(address.port);
  if (::connect(fd_.get(), reinterpret_cast<sockaddr*>(&sin6), sizeof(sin6)) != 0) die("connect tcp6");
}

void Client::request() {
  if (!write_all(fd_.get(), "REQ\n", 4)) die("client write");
  std::string carry;
  if (!read_line(fd_.get(), carry)) die("client read");
}

void Client::begin_request() {
  if (!write_all(fd_.get(), "RE", 2)) die("client write");
}

void Client::end_request() {
  if (!write_all(fd_.get(), "Q\n", 2)) die("client write");
  std::string carry;
  if (!read_line(fd_.get(), carry)) die("client read");
}

void Client::hang_up() {
  ::shutdown(fd_.get(), SHUT_WR);
  char buf[64];
  while (::read(fd_.get(), buf, sizeof(buf)) > 0) {
  }
  fd_.reset();
}

bool eventually(const std::function<bool()>& done, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return true;
}

uint64_t monotonic_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000ull + static_cast<uint64_t>(ts.tv_nsec);
}

}  // namespace idlepool::testing
