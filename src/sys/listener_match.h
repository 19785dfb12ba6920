// Pure matching of registered addresses against sock_diag dumps: which listening socket serves an address, and how
// many accepted connections and queued connections it has. No I/O; unit-tested on hand-made socket lists.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "idlepool/core/address.h"
#include "idlepool/wire/sock_diag.h"

namespace idlepool::sys {

// The listening TCP socket that accepts connections for `addr`: an exact (address, port) match first, else a
// wildcard listener of the same family, else (for IPv4) a dual-stack [::] listener. nullptr if none.
const wire::InetSocketInfo* match_tcp_listener(const SocketAddress& addr,
                                               std::span<const wire::InetSocketInfo> listeners);

// The listening unix stream socket bound to `path` (or abstract `name`). nullptr if none.
const wire::UnixSocketInfo* match_unix_listener(const SocketAddress& addr,
                                                std::span<const wire::UnixSocketInfo> sockets);

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
