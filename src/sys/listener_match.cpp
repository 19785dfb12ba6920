#include "listener_match.h"

#include <sys/socket.h>

#include <algorithm>

namespace idlepool::sys {
namespace {

bool is_v4_mapped(const std::array<uint8_t, 16>& ip) {
  for (int i = 0; i < 10; ++i)
    if (ip[i] != 0) return false;
  return ip[10] == 0xff && ip[11] == 0xff;
}

bool is_any(const std::array<uint8_t, 16>& ip, bool ipv4) {
  std::array<uint8_t, 16> any{};
  return ipv4 ? ip == v4_mapped(0) : ip == any;
}

}  // namespace

const wire::InetSocketInfo* match_tcp_listener(const SocketAddress& addr,
                                               std::span<const wire::InetSocketInfo> listeners,
                                               const ListenerTrust& trust) {
  const uint8_t family = addr.ipv4 ? AF_INET : AF_INET6;
  const wire::InetSocketInfo* wildcard = nullptr;
  const wire::InetSocketInfo* dual_stack = nullptr;
  for (const auto& l : listeners) {
    if (l.state != wire::kTcpListen || l.local_port != addr.port) continue;
    if (trust.owner_uid && l.uid != *trust.owner_uid) continue;
    if (l.family == family && l.local_ip == addr.ip) return &l;
    if (l.family == family && is_any(l.local_ip, family == AF_INET)) wildcard = &l;
    if (addr.ipv4 && l.family == AF_INET6 && !l.v6only && is_any(l.local_ip, false)) dual_stack = &l;
  }
  return wildcard ? wildcard : dual_stack;
}

const wire::UnixSocketInfo* match_unix_listener(const SocketAddress& addr,
                                                std::span<const wire::UnixSocketInfo> sockets,
                                                const ListenerTrust& trust) {
  // Kernels before 5.3 say nothing of owners: then the bound file alone decides.
  bool kernel_names_owners = std::any_of(sockets.begin(), sockets.end(), [](const auto& s) { return s.has_uid; });
  bool kernel_names_files = std::any_of(sockets.begin(), sockets.end(), [](const auto& s) { return s.has_vfs; });
  auto trusted = [&](const wire::UnixSocketInfo& s) {
    return s.state == wire::kTcpListen && s.type == SOCK_STREAM && s.has_name &&
           (!trust.owner_uid || !kernel_names_owners || (s.has_uid && s.uid == *trust.owner_uid));
  };
  if (!addr.abstract && kernel_names_files) {
    // The socket bound to the file the path names here; one bound to the same name elsewhere is someone else's.
    if (!trust.unix_file) return nullptr;
    for (const auto& s : sockets)
      if (trusted(s) && !s.abstract && s.has_vfs && s.vfs_ino == trust.unix_file->first &&
          s.vfs_dev == trust.unix_file->second)
        return &s;
    return nullptr;
  }
  for (const auto& s : sockets)
    if (trusted(s) && s.abstract == addr.abstract && s.name == addr.path) return &s;
  return nullptr;
}

int attribute_tcp_connection(const wire::InetSocketInfo& conn, std::span<const TcpListenerRef> listeners) {
  int wildcard = -1;
  const bool conn_v4 = conn.family == AF_INET || is_v4_mapped(conn.local_ip);
  for (size_t i = 0; i < listeners.size(); ++i) {
    const auto& l = listeners[i];
    if (l.port != conn.local_port) continue;
    if (!l.wildcard && l.ip == conn.local_ip) return static_cast<int>(i);
    if (!l.wildcard) continue;
    // 0.0.0.0 takes IPv4 connections; :: takes IPv6 ones and, unless v6only, IPv4 ones too.
    bool takes = l.ipv4 ? conn_v4 : (!conn_v4 || !l.v6only);
    if (takes && (wildcard < 0 || (l.ipv4 && conn_v4))) wildcard = static_cast<int>(i);
  }
  return wildcard;
}

}  // namespace idlepool::sys
