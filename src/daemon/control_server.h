// The daemon's end of the control socket (protocol: include/idlepool/wire/control_protocol.h): a unix socket served
// by a StreamServer in the epoll loop. A request is one line; garbage or an oversized request gets an error reply.
#pragma once

#include <sys/types.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "idlepool/result.h"
#include "idlepool/wire/control_protocol.h"
#include "stream_server.h"

namespace idlepool::daemon {

class ControlServer {
 public:
  using Handler = std::function<wire::ControlResponse(const wire::ControlRequest&)>;
  // epoll data for the listening socket is `listen_tag`; clients are tagged `client_tag_base + fd`.
  static Result<std::unique_ptr<ControlServer>> open(const std::string& path, std::optional<gid_t> group, int epoll_fd,
                                                     uint64_t listen_tag, uint64_t client_tag_base, Handler handler);
  ~ControlServer();

  StreamServer& server() { return *server_; }
  const std::string& path() const { return path_; }

  static constexpr std::chrono::seconds kClientDeadline{5};

 private:
  ControlServer(std::string path, std::unique_ptr<StreamServer> server)
      : path_(std::move(path)), server_(std::move(server)) {}

  std::string path_;
  std::unique_ptr<StreamServer> server_;
};

}  // namespace idlepool::daemon
