#include "stream_server.h"

#include <netinet/in.h>
#include <spdlog/spdlog.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

namespace idlepool::daemon {

Result<std::unique_ptr<StreamServer>> StreamServer::serve(std::string name, sys::UniqueFd listening, int epoll_fd,
                                                          uint64_t listen_tag, uint64_t client_tag_base, Limits limits,
                                                          Respond respond) {
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = listen_tag;
  if (epoll_ctl(epoll_fd, EPOLL_CTL_ADD, listening.get(), &ev) != 0)
    return Error::from_errno("cannot watch " + name, errno);
  return std::unique_ptr<StreamServer>(new StreamServer(std::move(name), std::move(listening), epoll_fd,
                                                        client_tag_base, std::move(limits), std::move(respond)));
}

StreamServer::~StreamServer() {
  for (auto& [fd, c] : clients_) epoll_ctl(epoll_, EPOLL_CTL_DEL, fd, nullptr);
  epoll_ctl(epoll_, EPOLL_CTL_DEL, fd_.get(), nullptr);
}

void StreamServer::on_listen_readable(MonoTime now) {
  for (;;) {
    int c = ::accept4(fd_.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (c < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK)
        spdlog::warn("{}: accept: {}, ignoring", name_, std::strerror(errno));
      return;
    }
    Client client;
    client.fd.reset(c);
    if (clients_.size() >= limits_.max_clients) {
      spdlog::debug("{}: {} clients already, closing a new one", name_, clients_.size());
      continue;  // closed with `client`
    }
    client.deadline = now + limits_.deadline;
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = client_tag_base_ + static_cast<uint64_t>(c);
    if (epoll_ctl(epoll_, EPOLL_CTL_ADD, c, &ev) != 0) continue;
    clients_.emplace(c, std::move(client));
  }
}

void StreamServer::want(int fd, uint32_t events) {
  epoll_event ev{};
  ev.events = events;
  ev.data.u64 = client_tag_base_ + static_cast<uint64_t>(fd);
  epoll_ctl(epoll_, EPOLL_CTL_MOD, fd, &ev);
}

void StreamServer::close_client(int fd) {
  epoll_ctl(epoll_, EPOLL_CTL_DEL, fd, nullptr);
  clients_.erase(fd);
}

void StreamServer::reply(Client& c, std::string out) {
  c.out = std::move(out);
  c.written = 0;
  want(c.fd.get(), EPOLLOUT);
}

void StreamServer::on_client_event(int fd, uint32_t events) {
  auto it = clients_.find(fd);
  if (it == clients_.end()) return;
  Client& c = it->second;
  char buf[4096];
  if (c.draining) {
    // The reply is sent and our side shut: what the client still sends is read and dropped until it closes (or its
    // deadline), so that closing never resets a connection whose reply the client has not read yet.
    for (;;) {
      ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
      if (n <= 0) break;
    }
    close_client(fd);
    return;
  }
  if (!c.out.empty()) {
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
    want(fd, EPOLLIN);
    return;
  }
  if (!(events & (EPOLLIN | EPOLLHUP | EPOLLERR))) return;
  for (;;) {
    ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    if (n <= 0) {
      // Closed before a whole request: nothing to answer.
      close_client(fd);
      return;
    }
    c.in.append(buf, static_cast<size_t>(n));
    if (auto out = respond_(c.in)) {
      reply(c, std::move(*out));
      return;
    }
    if (c.in.size() > limits_.max_request) {
      reply(c, limits_.too_long);
      return;
    }
  }
}

std::optional<MonoTime> StreamServer::expire(MonoTime now) {
  std::optional<MonoTime> next;
  for (auto it = clients_.begin(); it != clients_.end();) {
    if (it->second.deadline <= now) {
      spdlog::debug("{}: a client took more than {}s, closing it", name_, limits_.deadline.count());
      epoll_ctl(epoll_, EPOLL_CTL_DEL, it->first, nullptr);
      it = clients_.erase(it);
      continue;
    }
    if (!next || it->second.deadline < *next) next = it->second.deadline;
    ++it;
  }
  return next;
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
