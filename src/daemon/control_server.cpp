#include "control_server.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "idlepool/sys/files.h"

namespace idlepool::daemon {

Result<std::unique_ptr<ControlServer>> ControlServer::open(const std::string& path, std::optional<gid_t> group,
                                                           EventLoop& loop, Handler handler) {
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
    // An ACL entry rather than a chown: the file's owner may set it, so idlepoold needs no CAP_CHOWN.
    if (auto granted = sys::grant_group_rw(path, *group); !granted) return granted.error();
  }
  if (::listen(fd.get(), 16) != 0) return Error::from_errno("cannot listen on " + path, errno);
  StreamServer::Limits limits;
  limits.max_request = wire::kMaxControlRequest;
  limits.too_long = wire::encode_control_response(
      wire::control_failure({wire::ErrorCode::kBadRequest, "request longer than 64 KiB"}));
  limits.deadline = kClientDeadline;
  limits.max_per_user = kMaxPerUser;
  auto respond = [handler = std::move(handler)](std::string_view in, const Peer& peer) -> std::optional<std::string> {
    size_t nl = in.find('\n');
    if (nl == std::string_view::npos) return std::nullopt;
    auto request = wire::parse_control_request(in.substr(0, nl));
    return wire::encode_control_response(request ? handler(*request, peer) : wire::control_failure(request.error()));
  };
  auto server =
      StreamServer::serve("control socket " + path, std::move(fd), loop, std::move(limits), std::move(respond));
  if (!server) return server.error();
  return std::unique_ptr<ControlServer>(new ControlServer(path, std::move(*server)));
}

ControlServer::~ControlServer() {
  server_.reset();
  ::unlink(path_.c_str());
}

}  // namespace idlepool::daemon
