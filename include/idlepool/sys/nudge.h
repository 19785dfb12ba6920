// A nudge: one empty connection to a pool's listening socket, closed at once. A server that reacts to the edge of a
// new connection (php-fpm's ondemand master, epoll EPOLLET) and missed one (see check_stall in core/policy.h) looks
// at its queue again; its worker takes the stalled connections first, then reads end-of-file on this one.
#pragma once

#include <chrono>
#include <optional>

#include "idlepool/core/address.h"
#include "idlepool/result.h"
#include "idlepool/sys/sock_diag.h"
#include "idlepool/sys/unique_fd.h"

namespace idlepool::sys {

// The nudge without waiting: connects without blocking. Done when the returned fd is invalid (unix sockets connect at
// once); otherwise a TCP handshake is under way on it: close it once it is writable (or after a deadline), which the
// daemon's loop does. Errors name the address.
//
// A unix path is a name a site user may be able to change under the daemon (their pool's directory). With `file`
// (the listener's own, as the probe registered it), the path is opened first (O_PATH), the file it names checked to
// be that very socket, and the connection made through /proc/self/fd: root connects to the pool's socket and nowhere
// else, whatever the path says by then.
Result<UniqueFd> start_nudge(const SocketAddress& address, const std::optional<SocketFile>& file = std::nullopt);

// The same, waiting: connects to `address` (a wildcard TCP address through the loopback of its family) and closes.
// TCP waits up to `timeout` for the handshake, so that the connection reaches the queue. Errors name the address.
Result<void> nudge(const SocketAddress& address, std::chrono::milliseconds timeout = std::chrono::milliseconds(500),
                   const std::optional<SocketFile>& file = std::nullopt);

}  // namespace idlepool::sys
