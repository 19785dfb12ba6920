#include "control_server.h"

#include <spdlog/spdlog.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace idlepool::daemon {

Result<std::unique_ptr<ControlServer>> ControlServer::open(const std::string& path, std::optional<gid_t> group,
                                                           int epoll_fd, uint64_t listen_tag,
                                                           uint64_t client_tag_base) {
  sockaddr_un sun{};
  if (path.size() >= sizeof(sun.sun_path)) return Error{"control socket path " + path + " is too long", ENAMETOOLONG};
  sys::UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd.valid()) return Error::from_errno("cannot create the control socket", errno);
  sun.sun_family = AF_UNIX;
  std::memcpy(sun.sun_path, path.c_str(), path.size());
  ::unlink(path.c_str());
  mode_t old = ::umask(0177);  // root only until the group is set
  int r = ::bind(fd.get(), reinterpret_cast<sockaddr*>(&sun), sizeof(sun));
  ::umask(old);
  if (r != 0) return Error::from_errno("cannot bind the control socket " + path, errno);
  if (group) {
    if (::chown(path.c_str(), 0, *group) != 0 || ::chmod(path.c_str(), 0660) != 0)
      return Error::from_errno("cannot give the control socket " + path + " to its group", errno);
  }
  if (::listen(fd.get(), 16) != 0) return Error::from_errno("cannot listen on " + path, errno);
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = listen_tag;
  if (epoll_ctl(epoll_fd, EPOLL_CTL_ADD, fd.get(), &ev) != 0) return Error::from_errno("epoll_ctl", errno);
  return std::unique_ptr<ControlServer>(new ControlServer(path, std::move(fd), epoll_fd, client_tag_base));
}

ControlServer::~ControlServer() {
  clients_.clear();
  ::unlink(path_.c_str());
}

void ControlServer::on_listen_readable(MonoTime now) {
  for (;;) {
    int c = ::accept4(fd_.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (c < 0) {
      if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
        spdlog::warn("control socket: accept: {}, ignoring", std::strerror(errno));
      if (errno == EINTR) continue;
      return;
    }
    Client client;
    client.fd.reset(c);
    client.deadline = now + kClientDeadline;
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = client_tag_base_ + static_cast<uint64_t>(c);
    if (epoll_ctl(epoll_, EPOLL_CTL_ADD, c, &ev) != 0) continue;  // the fd closes with `client`
    clients_.emplace(c, std::move(client));
  }
}

void ControlServer::want(int fd, uint32_t events) {
  epoll_event ev{};
  ev.events = events;
  ev.data.u64 = client_tag_base_ + static_cast<uint64_t>(fd);
  epoll_ctl(epoll_, EPOLL_CTL_MOD, fd, &ev);
}

void ControlServer::close_client(int fd) {
  epoll_ctl(epoll_, EPOLL_CTL_DEL, fd, nullptr);
  clients_.erase(fd);
}

void ControlServer::respond(Client& c, const wire::ControlResponse& response) {
  c.out = wire::encode_control_response(response);
  c.written = 0;
  ::shutdown(c.fd.get(), SHUT_RD);
  want(c.fd.get(), EPOLLOUT);
}

void ControlServer::on_client_event(int fd, uint32_t events, const Handler& handler) {
  auto it = clients_.find(fd);
  if (it == clients_.end()) return;
  Client& c = it->second;
  if (!c.out.empty()) {
    while (c.written < c.out.size()) {
      ssize_t n = ::send(fd, c.out.data() + c.written, c.out.size() - c.written, MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;  // EPOLLOUT again later
      if (n <= 0) break;                                                // the client went away
      c.written += static_cast<size_t>(n);
    }
    close_client(fd);
    return;
  }
  if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
    char buf[4096];
    for (;;) {
      ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
      if (n <= 0) {
        // Closed before a whole request: nothing to answer.
        close_client(fd);
        return;
      }
      c.in.append(buf, static_cast<size_t>(n));
      size_t nl = c.in.find('\n');
      if (nl != std::string::npos) {
        auto request = wire::parse_control_request(std::string_view(c.in).substr(0, nl));
        respond(c, request ? handler(*request) : wire::control_error(request.error()));
        return;
      }
      if (c.in.size() > wire::kMaxControlRequest) {
        respond(c, wire::control_error(Error{"bad-request: request longer than 64 KiB"}));
        return;
      }
    }
  }
}

std::optional<MonoTime> ControlServer::expire(MonoTime now) {
  std::optional<MonoTime> next;
  for (auto it = clients_.begin(); it != clients_.end();) {
    if (it->second.deadline <= now) {
      spdlog::debug("control socket: a client sent no whole request in {}s, closing it", kClientDeadline.count());
      epoll_ctl(epoll_, EPOLL_CTL_DEL, it->first, nullptr);
      it = clients_.erase(it);
      continue;
    }
    if (!next || it->second.deadline < *next) next = it->second.deadline;
    ++it;
  }
  return next;
}

}  // namespace idlepool::daemon
