// A nudge: one empty connection to a pool's listening socket, closed at once. A server that reacts to the edge of a
// new connection (php-fpm's ondemand master, epoll EPOLLET) and missed one (see check_stall in core/policy.h) looks
// at its queue again; its worker takes the stalled connections first, then reads end-of-file on this one.
#pragma once

#include <chrono>

#include "idlepool/core/address.h"
#include "idlepool/result.h"
#include "idlepool/sys/unique_fd.h"

namespace idlepool::sys {

// The nudge without waiting: connects without blocking. Done when the returned fd is invalid (unix sockets connect at
// once); otherwise a TCP handshake is under way on it: close it once it is writable (or after a deadline), which the
// daemon's loop does. Errors name the address.
Result<UniqueFd> start_nudge(const SocketAddress& address);

// The same, waiting: connects to `address` (a wildcard TCP address through the loopback of its family) and closes.
// TCP waits up to `timeout` for the handshake, so that the connection reaches the queue. Errors name the address.
Result<void> nudge(const SocketAddress& address, std::chrono::milliseconds timeout = std::chrono::milliseconds(500));

}  // namespace idlepool::sys
