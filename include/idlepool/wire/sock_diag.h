// sock_diag (NETLINK_SOCK_DIAG) requests and replies as bytes: building dump requests and decoding replies is pure
// so that it can be tested on byte fixtures; src/sys/sock_diag.cpp only moves the bytes.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "idlepool/result.h"

namespace idlepool::wire {

// Kernel TCP states (include/net/tcp_states.h); unix sockets reuse them.
inline constexpr uint8_t kTcpEstablished = 1;
inline constexpr uint8_t kTcpCloseWait = 8;
inline constexpr uint8_t kTcpListen = 10;

struct InetSocketInfo {
  uint8_t family = 0;  // AF_INET or AF_INET6
  uint8_t state = 0;
  std::array<uint8_t, 16> local_ip{};  // IPv4 v4-mapped
  uint16_t local_port = 0;
  std::array<uint8_t, 16> remote_ip{};
  uint16_t remote_port = 0;
  uint64_t cookie = 0;
  uint32_t inode = 0;
  uint32_t rqueue = 0;  // listener: connections waiting in the accept queue
  uint32_t wqueue = 0;  // listener: the accept queue's limit
  bool v6only = false;
  uint32_t uid = 0;  // who created the socket (systemd's listeners are root's)
};

struct UnixSocketInfo {
  uint8_t type = 0;  // SOCK_STREAM, ...
  uint8_t state = 0;
  uint64_t cookie = 0;
  uint32_t inode = 0;
  bool has_name = false;
  bool abstract = false;
  std::string name;  // path, or the abstract name without its leading NUL
  bool has_rqlen = false;
  uint32_t rqueue = 0;      // listener: connections waiting to be accepted
  uint32_t wqueue = 0;      // listener: the backlog limit
  uint32_t peer_inode = 0;  // connected socket: its peer's inode
  // Listener: the peer inodes of the connections waiting in its queue. A queued connection's own socket may or may
  // not be listed by the kernel (it is not on 6.18); its peer always is, so this is how queued ones are told apart.
  std::vector<uint32_t> queued_peers;
  // The file the socket is bound to (UNIX_DIAG_VFS): with stat() of the path in this mount namespace, tells a pool's
  // socket from a same-named one another mount namespace bound. Unset on kernels that do not say.
  bool has_vfs = false;
  uint64_t vfs_ino = 0;
  uint32_t vfs_dev = 0;
  // Who created the socket (UNIX_DIAG_UID, Linux 5.3+): systemd's listeners are root's.
  bool has_uid = false;
  uint32_t uid = 0;
};

// One recv() worth of a dump reply.
struct DiagBatch {
  std::vector<InetSocketInfo> inet;
  std::vector<UnixSocketInfo> unix_sockets;
  bool done = false;  // NLMSG_DONE seen: the dump is complete
};

// A dump of TCP sockets of `family` in any of `state_mask` (bit 1 << state).
std::vector<uint8_t> build_inet_dump_request(uint8_t family, uint32_t state_mask, uint32_t seq);
// The one TCP socket with the local and remote address and port of `id` (family included): not a dump, a lookup.
std::vector<uint8_t> build_inet_lookup_request(const InetSocketInfo& id, uint32_t seq);
// A dump of unix sockets in any of `state_mask`, with their names, queue lengths, peers, queued peers, bound files
// and owners.
std::vector<uint8_t> build_unix_dump_request(uint32_t state_mask, uint32_t seq);

// Decodes the netlink messages in `bytes` (one datagram of a dump reply) and appends the sockets to `batch`.
// Truncated or malformed messages and NLMSG_ERROR replies are errors; nothing is read past `bytes`.
Result<void> decode_diag_reply(std::span<const uint8_t> bytes, uint32_t seq, DiagBatch& batch);

}  // namespace idlepool::wire
