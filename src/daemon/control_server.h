// The daemon's end of the control socket (protocol: include/idlepool/wire/control_protocol.h): a unix socket served
// by a StreamServer in the event loop. A request is one line; garbage or an oversized request gets an error reply.
// Every request comes with its sender's credentials (SO_PEERCRED): the handler decides what that sender may do.
#pragma once

#include <sys/types.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "event_loop.h"
#include "idlepool/result.h"
#include "idlepool/wire/control_protocol.h"
#include "stream_server.h"

namespace idlepool::daemon {

class ControlServer {
 public:
  using Handler = std::function<wire::ControlResponse(const wire::ControlRequest&, const Peer&)>;
  // Binds `path` (mode 0600: root only; with `group`, an ACL lets that group in too) and serves it from `loop`.
  static Result<std::unique_ptr<ControlServer>> open(const std::string& path, std::optional<gid_t> group,
                                                     EventLoop& loop, Handler handler);
  ~ControlServer();
  ControlServer(const ControlServer&) = delete;
  ControlServer& operator=(const ControlServer&) = delete;

  static constexpr std::chrono::seconds kClientDeadline{5};
  // One user cannot hold more connections than this (the 64 slots stay open to everyone else).
  static constexpr size_t kMaxPerUser = 8;

 private:
  ControlServer(std::string path, std::unique_ptr<StreamServer> server)
      : path_(std::move(path)), server_(std::move(server)) {}

  std::string path_;
  std::unique_ptr<StreamServer> server_;
};

}  // namespace idlepool::daemon
