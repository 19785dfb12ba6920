// A listening stream socket served from the daemon's epoll loop: one request and one response per connection.
// Non-blocking accept, a buffer per client for what it sent and for the reply, a deadline per client, a cap on the
// number of clients. Half-sent, oversized or garbage requests get the protocol's error reply or a closed connection;
// the loop never blocks on a client and holds nothing between them. The control socket (newline-terminated JSON) and
// the metrics endpoint (HTTP) are its two users.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "idlepool/core/address.h"
#include "idlepool/core/policy.h"
#include "idlepool/result.h"
#include "idlepool/sys/unique_fd.h"

namespace idlepool::daemon {

class StreamServer {
 public:
  // Given what a client sent so far: the reply once that is a whole request (or a bad one), nothing while more may
  // come. Called on the loop thread.
  using Respond = std::function<std::optional<std::string>(std::string_view received)>;
  struct Limits {
    size_t max_request = 64 * 1024;  // longer: `too_long` is the reply
    std::string too_long;
    size_t max_clients = 64;           // more at once are closed on accept
    std::chrono::seconds deadline{5};  // to send a whole request and take the reply
  };

  // Serves `listening` (bound and listening). epoll data: `listen_tag` for it, `client_tag_base + fd` for clients.
  static Result<std::unique_ptr<StreamServer>> serve(std::string name, sys::UniqueFd listening, int epoll_fd,
                                                     uint64_t listen_tag, uint64_t client_tag_base, Limits limits,
                                                     Respond respond);
  ~StreamServer();

  // Accepts every pending connection.
  void on_listen_readable(MonoTime now);
  // Reads, answers, writes, closes: whatever the client's state calls for.
  void on_client_event(int fd, uint32_t events);
  // Closes clients past their deadline; returns the next deadline, if any client is left.
  std::optional<MonoTime> expire(MonoTime now);
  bool owns_tag(uint64_t tag) const { return tag >= client_tag_base_ && tag < client_tag_base_ + (uint64_t{1} << 32); }
  int fd_of_tag(uint64_t tag) const { return static_cast<int>(tag - client_tag_base_); }
  int listening_fd() const { return fd_.get(); }
  size_t clients() const { return clients_.size(); }

 private:
  struct Client {
    sys::UniqueFd fd;
    std::string in;
    std::string out;
    size_t written = 0;
    bool draining = false;  // replied; waiting for the client to close
    MonoTime deadline{0};
  };
  StreamServer(std::string name, sys::UniqueFd fd, int epoll_fd, uint64_t client_tag_base, Limits limits,
               Respond respond)
      : name_(std::move(name)),
        fd_(std::move(fd)),
        epoll_(epoll_fd),
        client_tag_base_(client_tag_base),
        limits_(std::move(limits)),
        respond_(std::move(respond)) {}
  void reply(Client& c, std::string out);
  void close_client(int fd);
  void want(int fd, uint32_t events);

  std::string name_;
  sys::UniqueFd fd_;
  int epoll_;
  uint64_t client_tag_base_;
  Limits limits_;
  Respond respond_;
  std::map<int, Client> clients_;
};

// A TCP socket bound to `address` (SO_REUSEADDR), non-blocking and listening. Errors name the address.
Result<sys::UniqueFd> listen_tcp(const SocketAddress& address, int backlog = 64);

}  // namespace idlepool::daemon
