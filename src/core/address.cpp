#include "idlepool/core/address.h"

#include <arpa/inet.h>
#include <sys/un.h>

#include <charconv>
#include <cstring>

namespace idlepool {
namespace {

constexpr size_t kMaxUnixPath = sizeof(sockaddr_un::sun_path) - 1;

Error bad(std::string_view text, std::string_view why) {
  return Error{"invalid socket address '" + std::string(text) + "': " + std::string(why)};
}

Result<uint16_t> parse_port(std::string_view text, std::string_view port) {
  if (port.empty()) return bad(text, "missing port after ':'");
  unsigned value = 0;
  auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (ec != std::errc() || end != port.data() + port.size())
    return bad(text, "port '" + std::string(port) + "' is not a number");
  if (value == 0 || value > 65535) return bad(text, "port " + std::string(port) + " is out of range 1-65535");
  return static_cast<uint16_t>(value);
}

}  // namespace

std::array<uint8_t, 16> v4_mapped(uint32_t ipv4_be) {
  std::array<uint8_t, 16> ip{};
  ip[10] = 0xff;
  ip[11] = 0xff;
  std::memcpy(&ip[12], &ipv4_be, 4);
  return ip;
}

bool SocketAddress::is_wildcard() const {
  if (!is_tcp()) return false;
  std::array<uint8_t, 16> any{};
  return ip == any || ip == v4_mapped(0);
}

std::string SocketAddress::to_string() const {
  if (is_unix()) return abstract ? "@" + path : path;
  char buf[INET6_ADDRSTRLEN] = {};
  if (ipv4) {
    inet_ntop(AF_INET, &ip[12], buf, sizeof(buf));
    return std::string(buf) + ":" + std::to_string(port);
  }
  inet_ntop(AF_INET6, ip.data(), buf, sizeof(buf));
  return "[" + std::string(buf) + "]:" + std::to_string(port);
}

Result<SocketAddress> parse_socket_address(std::string_view text) {
  SocketAddress addr;
  if (text.empty()) return bad(text, "empty");
  if (text.front() == '/' || text.front() == '@') {
    addr.kind = SocketAddress::Kind::kUnix;
    addr.abstract = text.front() == '@';
    addr.path = std::string(addr.abstract ? text.substr(1) : text);
    if (addr.path.empty()) return bad(text, "abstract socket name is empty");
    if (addr.path.size() > kMaxUnixPath)
      return bad(text, "unix socket path is longer than " + std::to_string(kMaxUnixPath) + " bytes");
    if (addr.path.find('\0') != std::string::npos) return bad(text, "contains a NUL byte");
    return addr;
  }
  addr.kind = SocketAddress::Kind::kTcp;
  if (text.front() == '[') {
    size_t close = text.find(']');
    if (close == std::string_view::npos) return bad(text, "missing ']' after IPv6 address");
    if (close + 1 >= text.size() || text[close + 1] != ':') return bad(text, "missing ':PORT' after ']'");
    std::string host(text.substr(1, close - 1));
    if (inet_pton(AF_INET6, host.c_str(), addr.ip.data()) != 1)
      return bad(text, "'" + host + "' is not an IPv6 address");
    auto port = parse_port(text, text.substr(close + 2));
    if (!port) return port.error();
    addr.port = *port;
    return addr;
  }
  size_t colon = text.rfind(':');
  if (colon == std::string_view::npos)
    return bad(text, "expected HOST:PORT, [IPV6]:PORT, an absolute unix socket path or @abstract");
  std::string host(text.substr(0, colon));
  if (host.find(':') != std::string::npos) return bad(text, "IPv6 addresses must be written in brackets: [::1]:PORT");
  uint32_t v4 = 0;
  if (inet_pton(AF_INET, host.c_str(), &v4) != 1) return bad(text, "'" + host + "' is not an IPv4 address");
  auto port = parse_port(text, text.substr(colon + 1));
  if (!port) return port.error();
  addr.ip = v4_mapped(v4);
  addr.ipv4 = true;
  addr.port = *port;
  return addr;
}

}  // namespace idlepool
