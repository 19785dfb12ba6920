#include "idlepool/sys/sock_diag.h"

#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <cerrno>
#include <cstring>

namespace idlepool::sys {
namespace {

// ENOENT from a dump means the kernel has no handler for that family: a module that is neither built in nor loaded.
Error with_module_hint(Error e, const char* module) {
  if (e.code == ENOENT)
    e.message += " (is the kernel module " + std::string(module) + " available? try: modprobe " + module + ")";
  return e;
}

}  // namespace

Result<SockDiag> SockDiag::open() {
  int fd = ::socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
  if (fd < 0) return Error::from_errno("cannot open a NETLINK_SOCK_DIAG socket", errno);
  return SockDiag(UniqueFd(fd));
}

Result<void> SockDiag::dump(const std::vector<uint8_t>& request, uint32_t seq, wire::DiagBatch& batch) {
  sockaddr_nl kernel{};
  kernel.nl_family = AF_NETLINK;
  if (::sendto(fd_.get(), request.data(), request.size(), 0, reinterpret_cast<sockaddr*>(&kernel), sizeof(kernel)) < 0)
    return Error::from_errno("sock_diag: cannot send dump request", errno);
  // 32 KiB holds a few hundred sockets per datagram; the kernel never sends more than the buffer offered.
  std::vector<uint8_t> buf(32768);
  while (!batch.done) {
    ssize_t n = ::recv(fd_.get(), buf.data(), buf.size(), 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Error::from_errno("sock_diag: cannot read dump reply", errno);
    }
    if (n == 0) return Error{"sock_diag: netlink socket closed during a dump", EPIPE};
    auto decoded = wire::decode_diag_reply(std::span<const uint8_t>(buf.data(), static_cast<size_t>(n)), seq, batch);
    if (!decoded) return decoded;
  }
  return {};
}

Result<std::vector<wire::InetSocketInfo>> SockDiag::dump_tcp(uint8_t family, uint32_t state_mask) {
  uint32_t seq = ++seq_;
  wire::DiagBatch batch;
  auto r = dump(wire::build_inet_dump_request(family, state_mask, seq), seq, batch);
  if (!r) return with_module_hint(r.error(), "tcp_diag");
  return std::move(batch.inet);
}

Result<std::vector<wire::UnixSocketInfo>> SockDiag::dump_unix(uint32_t state_mask) {
  uint32_t seq = ++seq_;
  wire::DiagBatch batch;
  auto r = dump(wire::build_unix_dump_request(state_mask, seq), seq, batch);
  if (!r) return with_module_hint(r.error(), "unix_diag");
  return std::move(batch.unix_sockets);
}

Result<wire::InetSocketInfo> SockDiag::lookup_tcp(const wire::InetSocketInfo& id) {
  uint32_t seq = ++seq_;
  auto request = wire::build_inet_lookup_request(id, seq);
  sockaddr_nl kernel{};
  kernel.nl_family = AF_NETLINK;
  if (::sendto(fd_.get(), request.data(), request.size(), 0, reinterpret_cast<sockaddr*>(&kernel), sizeof(kernel)) < 0)
    return Error::from_errno("sock_diag: cannot send a lookup", errno);
  std::vector<uint8_t> buf(8192);
  for (;;) {
    ssize_t n = ::recv(fd_.get(), buf.data(), buf.size(), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return Error::from_errno("sock_diag: cannot read a lookup's reply", n < 0 ? errno : EPIPE);
    wire::DiagBatch batch;
    auto decoded = wire::decode_diag_reply(std::span<const uint8_t>(buf.data(), static_cast<size_t>(n)), seq, batch);
    if (!decoded) return with_module_hint(decoded.error(), "tcp_diag");
    if (!batch.inet.empty()) return batch.inet.front();
  }
}

std::optional<uint32_t> local_tcp_peer_uid(int fd) {
  sockaddr_storage local{}, peer{};
  socklen_t local_len = sizeof(local), peer_len = sizeof(peer);
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &local_len) != 0 ||
      ::getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &peer_len) != 0 || local.ss_family != peer.ss_family)
    return std::nullopt;
  // The peer's socket, seen from its side: its local end is our remote one.
  wire::InetSocketInfo id;
  id.family = static_cast<uint8_t>(peer.ss_family);
  if (peer.ss_family == AF_INET) {
    const auto* p = reinterpret_cast<const sockaddr_in*>(&peer);
    const auto* l = reinterpret_cast<const sockaddr_in*>(&local);
    id.local_ip[10] = id.local_ip[11] = id.remote_ip[10] = id.remote_ip[11] = 0xff;
    std::memcpy(&id.local_ip[12], &p->sin_addr, 4);
    std::memcpy(&id.remote_ip[12], &l->sin_addr, 4);
    id.local_port = ntohs(p->sin_port);
    id.remote_port = ntohs(l->sin_port);
  } else if (peer.ss_family == AF_INET6) {
    const auto* p = reinterpret_cast<const sockaddr_in6*>(&peer);
    const auto* l = reinterpret_cast<const sockaddr_in6*>(&local);
    std::memcpy(id.local_ip.data(), &p->sin6_addr, 16);
    std::memcpy(id.remote_ip.data(), &l->sin6_addr, 16);
    id.local_port = ntohs(p->sin6_port);
    id.remote_port = ntohs(l->sin6_port);
  } else {
    return std::nullopt;
  }
  // A dual-stack listener's IPv4 client is in the IPv4 table: its addresses come v4-mapped.
  static constexpr uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (id.family == AF_INET6 && std::memcmp(id.local_ip.data(), kMapped, 12) == 0 &&
      std::memcmp(id.remote_ip.data(), kMapped, 12) == 0)
    id.family = AF_INET;
  auto diag = SockDiag::open();
  if (!diag) return std::nullopt;
  auto found = diag->lookup_tcp(id);
  if (!found) return std::nullopt;
  return found->uid;
}

Result<uint32_t> current_netns_inode() {
  struct stat st {};
  if (::stat("/proc/self/ns/net", &st) != 0) return Error::from_errno("cannot stat /proc/self/ns/net", errno);
  return static_cast<uint32_t>(st.st_ino);
}

SocketFile socket_file(const struct stat& st) {
  return {static_cast<uint64_t>(st.st_ino),
          static_cast<uint32_t>((major(st.st_dev) << 20) | (minor(st.st_dev) & 0xfffff))};
}

std::optional<SocketFile> socket_file_at(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0 || !S_ISSOCK(st.st_mode)) return std::nullopt;
  return socket_file(st);
}

}  // namespace idlepool::sys
