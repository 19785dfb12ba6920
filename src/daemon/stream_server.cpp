#include "stream_server.h"

#include <netinet/in.h>
#include <spdlog/spdlog.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

namespace idlepool::daemon {

Result<std::unique_ptr<StreamServer>> StreamServer::serve(std::string name, sys::UniqueFd listening, EventLoop& loop,
                                                          Limits limits, Respond respond) {
  std::unique_ptr<StreamServer> server(
      new StreamServer(std::move(name), std::move(listening), loop, std::move(limits), std::move(respond)));
  StreamServer* self = server.get();
  auto source = loop.io(server->fd_.get(), EPOLLIN, [self](uint32_t) { self->on_listen_readable(); });
  if (!source) return Error{"cannot serve " + server->name_ + ": " + source.error().message, source.error().code};
  server->listen_source_ = std::move(*source);
  return server;
}

StreamServer::~StreamServer() = default;

void StreamServer::on_listen_readable() {
  for (;;) {
    int c = ::accept4(fd_.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (c < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK)
        spdlog::warn("{}: accept: {}, ignoring", name_, std::strerror(errno));
      return;
    }
    auto client = std::make_unique<Client>();
    client->fd.reset(c);
    client->peer = limits_.identify ? limits_.identify(c) : peer_credentials(c);
    client->serial = ++accepted_;
    if (limits_.max_per_user > 0) cap_user(client->peer);
    if (clients_.size() >= limits_.max_clients) {
      spdlog::debug("{}: {} clients already, closing a new one", name_, clients_.size());
      continue;  // closed with `client`
    }
    auto io = loop_.io(c, EPOLLIN, [this, c](uint32_t events) { on_client_event(c, events); });
    auto deadline = loop_.timer([this, c] {
      spdlog::debug("{}: a client took more than {} ms, closing it", name_, limits_.deadline.count());
      close_client(c);
    });
    if (!io || !deadline) continue;
    deadline->arm(EventLoop::now() + limits_.deadline);
    client->io = std::move(*io);
    client->deadline = std::move(*deadline);
    clients_.emplace(c, std::move(client));
  }
}

void StreamServer::close_client(int fd) { clients_.erase(fd); }

void StreamServer::cap_user(const Peer& peer) {
  size_t theirs = 0;
  int oldest = -1;
  uint64_t oldest_serial = UINT64_MAX;
  for (const auto& [fd, c] : clients_) {
    if (c->peer.uid != peer.uid) continue;
    ++theirs;
    if (c->serial < oldest_serial) {
      oldest_serial = c->serial;
      oldest = fd;
    }
  }
  if (theirs < limits_.max_per_user) return;
  spdlog::debug("{}: {} clients of uid {} already, closing their oldest", name_, theirs,
                peer.uid ? std::to_string(*peer.uid) : std::string("unknown"));
  close_client(oldest);
}

Peer peer_credentials(int fd) {
  Peer p;
  ucred cred{};
  socklen_t len = sizeof(cred);
  if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0 && len == sizeof(cred) && cred.pid != 0) {
    p.uid = cred.uid;
    p.gid = cred.gid;
    p.pid = cred.pid;
  }
  return p;
}

void StreamServer::reply(Client& c, std::string out) {
  c.out = std::move(out);
  c.written = 0;
  c.io.set_io_events(EPOLLOUT);
}

// The reply is sent and our side shut: what the client still sends is read and dropped until it closes (or its
// deadline), so that closing never resets a connection whose reply the client has not read yet.
void StreamServer::drain(int fd) {
  char buf[4096];
  for (;;) {
    ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    if (n <= 0) break;
  }
  close_client(fd);
}

void StreamServer::send_reply(Client& c) {
  int fd = c.fd.get();
  while (c.written < c.out.size()) {
    ssize_t n = ::send(fd, c.out.data() + c.written, c.out.size() - c.written, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;  // EPOLLOUT again later
    if (n <= 0) {                                                    // the client went away
      close_client(fd);
      return;
    }
    c.written += static_cast<size_t>(n);
  }
  // All sent: the end of the stream tells the client so; it closes its side when it has read the reply.
  ::shutdown(fd, SHUT_WR);
  c.out = std::string();
  c.in = std::string();
  c.draining = true;
  c.io.set_io_events(EPOLLIN);
}

void StreamServer::on_client_event(int fd, uint32_t events) {
  auto it = clients_.find(fd);
  if (it == clients_.end()) return;
  Client& c = *it->second;
  if (c.draining) return drain(fd);
  if (!c.out.empty()) return send_reply(c);
  if (!(events & (EPOLLIN | EPOLLHUP | EPOLLERR))) return;
  char buf[4096];
  for (;;) {
    ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    if (n <= 0) return close_client(fd);  // closed before a whole request: nothing to answer
    c.in.append(buf, static_cast<size_t>(n));
    if (auto out = respond_(c.in, c.peer)) return reply(c, std::move(*out));
    if (c.in.size() > limits_.max_request) return reply(c, limits_.too_long);
  }
}

Result<sys::UniqueFd> listen_tcp(const SocketAddress& address, int backlog) {
  if (!address.is_tcp()) return Error{address.to_string() + " is not a TCP address", EINVAL};
  sockaddr_storage ss{};
  socklen_t len = 0;
  if (address.ipv4) {
    auto* sin = reinterpret_cast<sockaddr_in*>(&ss);
    sin->sin_family = AF_INET;
    sin->sin_port = htons(address.port);
    std::memcpy(&sin->sin_addr, address.ip.data() + 12, 4);
    len = sizeof(*sin);
  } else {
    auto* sin6 = reinterpret_cast<sockaddr_in6*>(&ss);
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons(address.port);
    std::memcpy(&sin6->sin6_addr, address.ip.data(), 16);
    len = sizeof(*sin6);
  }
  sys::UniqueFd fd(::socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd.valid()) return Error::from_errno("cannot create a socket for " + address.to_string(), errno);
  int one = 1;
  ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&ss), len) != 0)
    return Error::from_errno("cannot bind " + address.to_string(), errno);
  if (::listen(fd.get(), backlog) != 0) return Error::from_errno("cannot listen on " + address.to_string(), errno);
  return fd;
}

}  // namespace idlepool::daemon
