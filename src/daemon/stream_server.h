// A listening stream socket served from the daemon's event loop: one request and one response per connection.
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

#include "event_loop.h"
#include "idlepool/core/address.h"
#include "idlepool/result.h"
#include "idlepool/sys/unique_fd.h"

namespace idlepool::daemon {

// Who is on the other end of a connection, as far as the kernel can say: SO_PEERCRED on unix sockets; for TCP the
// owner of the peer socket when it is on this host (see identify hooks), else nothing.
struct Peer {
  std::optional<uint32_t> uid;
  std::optional<uint32_t> gid;
  int32_t pid = 0;
};

class StreamServer {
 public:
  // Given what a client sent so far: the reply once that is a whole request (or a bad one), nothing while more may
  // come. Called on the loop thread.
  using Respond = std::function<std::optional<std::string>(std::string_view received, const Peer& peer)>;
  // Who a newly accepted connection is from (default: SO_PEERCRED).
  using Identify = std::function<Peer(int fd)>;
  struct Limits {
    size_t max_request = 64 * 1024;  // longer: `too_long` is the reply
    std::string too_long;
    size_t max_clients = 64;  // more at once are closed on accept
    // More at once from one user (by uid; peers of unknown uid count together): the oldest of theirs is closed, so
    // that nobody can hold every slot and lock the others out. 0: no such cap.
    size_t max_per_user = 0;
    std::chrono::milliseconds deadline{5000};  // to send a whole request and take the reply
    Identify identify;
  };

  // Serves `listening` (bound and listening) from `loop`.
  static Result<std::unique_ptr<StreamServer>> serve(std::string name, sys::UniqueFd listening, EventLoop& loop,
                                                     Limits limits, Respond respond);
  ~StreamServer();
  StreamServer(const StreamServer&) = delete;
  StreamServer& operator=(const StreamServer&) = delete;

  size_t clients() const { return clients_.size(); }

 private:
  struct Client {
    sys::UniqueFd fd;
    Peer peer;
    uint64_t serial = 0;  // accept order
    EventLoop::Source io;
    EventLoop::Source deadline;
    std::string in;
    std::string out;
    size_t written = 0;
    bool draining = false;  // replied; waiting for the client to close
  };
  StreamServer(std::string name, sys::UniqueFd fd, EventLoop& loop, Limits limits, Respond respond)
      : name_(std::move(name)),
        fd_(std::move(fd)),
        loop_(loop),
        limits_(std::move(limits)),
        respond_(std::move(respond)) {}
  // Accepts every pending connection.
  void on_listen_readable();
  // Reads, answers, writes, closes: whatever the client's state calls for.
  void on_client_event(int fd, uint32_t events);
  void drain(int fd);
  void send_reply(Client& c);
  void reply(Client& c, std::string out);
  void close_client(int fd);
  // Makes room for one more client of `peer` under max_per_user by closing their oldest.
  void cap_user(const Peer& peer);

  std::string name_;
  sys::UniqueFd fd_;
  EventLoop& loop_;
  EventLoop::Source listen_source_;
  Limits limits_;
  Respond respond_;
  std::map<int, std::unique_ptr<Client>> clients_;
  uint64_t accepted_ = 0;
};

// SO_PEERCRED of a unix socket connection (empty uid for other sockets).
Peer peer_credentials(int fd);

// A TCP socket bound to `address` (SO_REUSEADDR), non-blocking and listening. Errors name the address.
Result<sys::UniqueFd> listen_tcp(const SocketAddress& address, int backlog = 64);

}  // namespace idlepool::daemon
