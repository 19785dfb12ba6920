#include "idlepool/sys/nudge.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <cerrno>
#include <cstring>

#include "idlepool/sys/unique_fd.h"

namespace idlepool::sys {
namespace {

Error failure(const SocketAddress& address, const std::string& what, int err) {
  return Error{"nudge " + address.to_string() + ": " + what + ": " + std::strerror(err), err};
}

}  // namespace

Result<UniqueFd> start_nudge(const SocketAddress& address, const std::optional<SocketFile>& file) {
  sockaddr_storage ss{};
  socklen_t len = 0;
  int family = AF_UNIX;
  UniqueFd pinned;  // the socket file, held by O_PATH while we connect through it
  if (address.is_unix() && !address.abstract && file) {
    pinned.reset(::open(address.path.c_str(), O_PATH | O_CLOEXEC));
    if (!pinned.valid()) return failure(address, "open", errno);
    struct stat st {};
    if (::fstat(pinned.get(), &st) != 0) return failure(address, "stat", errno);
    if (!S_ISSOCK(st.st_mode) || socket_file(st) != *file)
      return Error{"nudge " + address.to_string() + ": the path no longer names the pool's socket; not connecting",
                   ESTALE};
    std::string via = "/proc/self/fd/" + std::to_string(pinned.get());
    auto* un = reinterpret_cast<sockaddr_un*>(&ss);
    un->sun_family = AF_UNIX;
    std::memcpy(un->sun_path, via.c_str(), via.size() + 1);
    len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + via.size() + 1);
  } else if (address.is_unix()) {
    auto* un = reinterpret_cast<sockaddr_un*>(&ss);
    un->sun_family = AF_UNIX;
    size_t offset = address.abstract ? 1 : 0;  // abstract names start with a NUL
    if (address.path.size() + offset >= sizeof(un->sun_path))
      return Error{"nudge " + address.to_string() + ": path too long", ENAMETOOLONG};
    std::memcpy(un->sun_path + offset, address.path.data(), address.path.size());
    len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + offset + address.path.size() + (offset ? 0 : 1));
  } else {
    static constexpr uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    bool v4 = address.ipv4 || std::memcmp(address.ip.data(), kMapped, sizeof(kMapped)) == 0;
    if (v4) {
      family = AF_INET;
      auto* in = reinterpret_cast<sockaddr_in*>(&ss);
      in->sin_family = AF_INET;
      in->sin_port = htons(address.port);
      if (address.is_wildcard()) {
        in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      } else {
        std::memcpy(&in->sin_addr, address.ip.data() + 12, 4);
      }
      len = sizeof(sockaddr_in);
    } else {
      family = AF_INET6;
      auto* in6 = reinterpret_cast<sockaddr_in6*>(&ss);
      in6->sin6_family = AF_INET6;
      in6->sin6_port = htons(address.port);
      in6->sin6_addr = address.is_wildcard() ? in6addr_loopback : in6_addr{};
      if (!address.is_wildcard()) std::memcpy(&in6->sin6_addr, address.ip.data(), 16);
      len = sizeof(sockaddr_in6);
    }
  }
  UniqueFd fd(::socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return failure(address, "socket", errno);
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&ss), len) == 0) return UniqueFd();
  if (errno != EINPROGRESS) return failure(address, "connect", errno);  // unix: EAGAIN when its queue is full
  return fd;
}

Result<void> nudge(const SocketAddress& address, std::chrono::milliseconds timeout,
                   const std::optional<SocketFile>& file) {
  auto started = start_nudge(address, file);
  if (!started) return started.error();
  if (!started->valid()) return {};
  UniqueFd fd = std::move(*started);
  pollfd p{fd.get(), POLLOUT, 0};
  int n = ::poll(&p, 1, static_cast<int>(timeout.count()));
  if (n < 0) return failure(address, "poll", errno);
  if (n == 0) return failure(address, "handshake", ETIMEDOUT);
  int err = 0;
  socklen_t err_len = sizeof(err);
  ::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &err_len);
  if (err != 0) return failure(address, "connect", err);
  return {};
}

}  // namespace idlepool::sys
