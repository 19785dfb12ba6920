// The daemon's end of the control socket (protocol: include/idlepool/wire/control_protocol.h). Runs in the epoll
// loop: non-blocking accept, per-client buffers for the request and the response, a deadline per client. Garbage,
// oversized or half-sent requests get an error reply or a closed connection; the daemon never blocks on a client.
#pragma once

#include <sys/types.h>

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "idlepool/core/policy.h"
#include "idlepool/result.h"
#include "idlepool/sys/unique_fd.h"
#include "idlepool/wire/control_protocol.h"

namespace idlepool::daemon {

class ControlServer {
 public:
  using Handler = std::function<wire::ControlResponse(const wire::ControlRequest&)>;
  // epoll data for the listening socket is `listen_tag`; clients are tagged `client_tag_base + fd`.
  static Result<std::unique_ptr<ControlServer>> open(const std::string& path, std::optional<gid_t> group, int epoll_fd,
                                                     uint64_t listen_tag, uint64_t client_tag_base);
  ~ControlServer();

  // Accepts every pending connection.
  void on_listen_readable(MonoTime now);
  // Reads, answers, writes, closes: whatever the client's state calls for.
  void on_client_event(int fd, uint32_t events, const Handler& handler);
  // Closes clients past their deadline; returns the next deadline, if any client is left.
  std::optional<MonoTime> expire(MonoTime now);
  const std::string& path() const { return path_; }

  static constexpr std::chrono::seconds kClientDeadline{5};

 private:
  struct Client {
    sys::UniqueFd fd;
    std::string in;
    std::string out;
    size_t written = 0;
    MonoTime deadline{0};
  };
  ControlServer(std::string path, sys::UniqueFd fd, int epoll_fd, uint64_t client_tag_base)
      : path_(std::move(path)), fd_(std::move(fd)), epoll_(epoll_fd), client_tag_base_(client_tag_base) {}
  void respond(Client& c, const wire::ControlResponse& response);
  void close_client(int fd);
  void want(int fd, uint32_t events);

  std::string path_;
  sys::UniqueFd fd_;
  int epoll_;
  uint64_t client_tag_base_;
  std::map<int, Client> clients_;
};

}  // namespace idlepool::daemon
