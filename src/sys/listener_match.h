// Pure matching of registered addresses against sock_diag dumps: which listening socket serves an address, and how
// many accepted connections and queued connections it has. No I/O; unit-tested on hand-made socket lists.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <utility>
#include <vector>

#include "idlepool/core/address.h"
#include "idlepool/wire/sock_diag.h"

namespace idlepool::sys {

// Which listeners idlepool may count on. A site user can bind a socket of the same name as a pool's in a mount
// namespace of their own (unprivileged user namespaces), or a TCP one in another network namespace: the names are
// theirs to choose, so a listener is known by what they cannot forge: who created it (systemd's listeners are
// root's), and for a unix path the very file bound there as this daemon's mount namespace sees it.
struct ListenerTrust {
  std::optional<uint32_t> owner_uid;  // set: sockets created by anyone else are not it
  // (st_ino, st_dev) of the unix path in this mount namespace; unset when the path does not exist here. Kernels that
  // report no bound file (UNIX_DIAG_VFS) fall back to the name.
  std::optional<std::pair<uint64_t, uint32_t>> unix_file;
};

// The listening TCP socket that accepts connections for `addr`: an exact (address, port) match first, else a
// wildcard listener of the same family, else (for IPv4) a dual-stack [::] listener. nullptr if none.
const wire::InetSocketInfo* match_tcp_listener(const SocketAddress& addr,
                                               std::span<const wire::InetSocketInfo> listeners,
                                               const ListenerTrust& trust = {});

// The listening unix stream socket bound to `addr`: for a path, the one bound to the very file `trust.unix_file`
// names (whatever name it was bound under: /var/run/x.sock is /run/x.sock), else by name; for an abstract name, by
// name. Created by `trust.owner_uid` when that is set. nullptr if none.
const wire::UnixSocketInfo* match_unix_listener(const SocketAddress& addr,
                                                std::span<const wire::UnixSocketInfo> sockets,
                                                const ListenerTrust& trust = {});

// A registered TCP listener, for attributing accepted connections.
struct TcpListenerRef {
  std::array<uint8_t, 16> ip{};  // bound address, v4-mapped for IPv4
  uint16_t port = 0;
  bool wildcard = false;
  bool ipv4 = false;
  bool v6only = false;
};

// Index of the listener in `listeners` that accepted `conn` (by local address and port, exact before wildcard),
// or -1.
int attribute_tcp_connection(const wire::InetSocketInfo& conn, std::span<const TcpListenerRef> listeners);

}  // namespace idlepool::sys
