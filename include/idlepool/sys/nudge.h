// A nudge: one empty connection to a pool's listening socket, closed at once. A server that reacts to the edge of a
// new connection (php-fpm's ondemand master, epoll EPOLLET) and missed one (see check_stall in core/policy.h) looks
// at its queue again; its worker takes the stalled connections first, then reads end-of-file on this one.
#pragma once

#include <chrono>

#include "idlepool/core/address.h"
#include "idlepool/result.h"

namespace idlepool::sys {

// Connects to `address` (a wildcard TCP address through the loopback of its family) and closes. TCP waits up to
// `timeout` for the handshake, so that the connection reaches the queue. Errors name the address.
Result<void> nudge(const SocketAddress& address, std::chrono::milliseconds timeout = std::chrono::milliseconds(500));

}  // namespace idlepool::sys
