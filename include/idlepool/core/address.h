// A pool's listening socket address, as operators write it and as systemd's ListenStream= accepts it:
//   127.0.0.1:8888   [::1]:9000   0.0.0.0:80   [::]:80   /run/php/site.sock   @abstract-name
// Parsing and printing are pure; resolving an address to a live socket is src/sys/sock_diag.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "idlepool/result.h"

namespace idlepool {

struct SocketAddress {
  enum class Kind { kTcp, kUnix };

  Kind kind = Kind::kTcp;
  // TCP: IPv6 bytes; IPv4 is stored v4-mapped (::ffff:a.b.c.d). `ipv4` records how it was written.
  std::array<uint8_t, 16> ip{};
  bool ipv4 = false;
  uint16_t port = 0;
  // Unix: the path, or for an abstract socket the name after the leading NUL (written "@name").
  std::string path;
  bool abstract = false;

  bool is_tcp() const { return kind == Kind::kTcp; }
  bool is_unix() const { return kind == Kind::kUnix; }
  // 0.0.0.0 or ::
  bool is_wildcard() const;

  // The text form parse() accepts.
  std::string to_string() const;

  friend bool operator==(const SocketAddress&, const SocketAddress&) = default;
};

// Parses one address. Errors name the text and what is wrong with it.
Result<SocketAddress> parse_socket_address(std::string_view text);

// v4-mapped IPv6 bytes for an IPv4 address in network byte order.
std::array<uint8_t, 16> v4_mapped(uint32_t ipv4_be);

}  // namespace idlepool
