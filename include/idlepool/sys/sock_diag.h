// Dumps the host's sockets through NETLINK_SOCK_DIAG. The probe uses it to find a pool's listening socket by address
// (it never needs an fd of the socket: systemd holds that) and to read gauges at the moment they are asked for.
#pragma once

#include <sys/stat.h>

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "idlepool/result.h"
#include "idlepool/sys/unique_fd.h"
#include "idlepool/wire/sock_diag.h"

namespace idlepool::sys {

class SockDiag {
 public:
  static Result<SockDiag> open();

  // TCP sockets of one family (AF_INET or AF_INET6) in any state of `state_mask` (bit 1 << state).
  Result<std::vector<wire::InetSocketInfo>> dump_tcp(uint8_t family, uint32_t state_mask);
  // Unix sockets in any state of `state_mask`, with names and queue lengths.
  Result<std::vector<wire::UnixSocketInfo>> dump_unix(uint32_t state_mask);
  // The TCP socket whose local end is `local` and remote end `remote` (each with its port), if this network namespace
  // has it.
  Result<wire::InetSocketInfo> lookup_tcp(const wire::InetSocketInfo& id);

 private:
  explicit SockDiag(UniqueFd fd) : fd_(std::move(fd)) {}
  Result<void> dump(const std::vector<uint8_t>& request, uint32_t seq, wire::DiagBatch& batch);

  UniqueFd fd_;
  uint32_t seq_ = 0;
};

// Who is at the other end of the accepted TCP connection `fd`, when that end is a socket of this host (a local
// process connecting over loopback): the uid that created it. Nothing for a remote peer.
std::optional<uint32_t> local_tcp_peer_uid(int fd);

// Inode of this process's network namespace (what the kernel calls net->ns.inum).
Result<uint32_t> current_netns_inode();

// A unix socket's file as sock_diag names it (UNIX_DIAG_VFS): its inode, and its device as the kernel keeps it
// (MAJOR << 20 | MINOR, not stat()'s encoding).
using SocketFile = std::pair<uint64_t, uint32_t>;
SocketFile socket_file(const struct stat& st);
// The socket file at `path` in this mount namespace (symlinks followed: /var/run is /run); nothing if there is no
// socket there.
std::optional<SocketFile> socket_file_at(const std::string& path);

}  // namespace idlepool::sys
