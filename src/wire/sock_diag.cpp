#include "idlepool/wire/sock_diag.h"

#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/sock_diag.h>
#include <linux/unix_diag.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cstring>

namespace idlepool::wire {
namespace {

template <class Req>
std::vector<uint8_t> frame(const Req& req, uint32_t seq, bool dump = true) {
  nlmsghdr nlh{};
  nlh.nlmsg_len = NLMSG_LENGTH(sizeof(Req));
  nlh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
  nlh.nlmsg_flags = NLM_F_REQUEST | (dump ? NLM_F_DUMP : 0);
  nlh.nlmsg_seq = seq;
  std::vector<uint8_t> out(NLMSG_SPACE(sizeof(Req)), 0);
  std::memcpy(out.data(), &nlh, sizeof(nlh));
  std::memcpy(out.data() + NLMSG_HDRLEN, &req, sizeof(req));
  return out;
}

// Reads a trivially copyable T at `offset`, which the caller has bounds-checked.
template <class T>
T load(std::span<const uint8_t> bytes, size_t offset) {
  T value{};
  std::memcpy(&value, bytes.data() + offset, sizeof(T));
  return value;
}

Error malformed(const std::string& what) { return Error{"malformed sock_diag reply: " + what, EBADMSG}; }

// Walks the rtattrs of `attrs`, calling fn(type, payload) for each; rejects an attribute that overruns.
template <class Fn>
Result<void> for_each_attr(std::span<const uint8_t> attrs, Fn&& fn) {
  size_t off = 0;
  while (off + sizeof(rtattr) <= attrs.size()) {
    auto rta = load<rtattr>(attrs, off);
    if (rta.rta_len < sizeof(rtattr) || off + rta.rta_len > attrs.size())
      return malformed("attribute " + std::to_string(rta.rta_type) + " of length " + std::to_string(rta.rta_len) +
                       " overruns its message");
    fn(rta.rta_type, attrs.subspan(off + RTA_LENGTH(0), rta.rta_len - RTA_LENGTH(0)));
    off += RTA_ALIGN(rta.rta_len);
  }
  return {};
}

uint64_t cookie_of(const uint32_t parts[2]) { return (uint64_t{parts[1]} << 32) | parts[0]; }

Result<void> decode_inet(std::span<const uint8_t> payload, DiagBatch& batch) {
  if (payload.size() < sizeof(inet_diag_msg))
    return malformed("inet_diag_msg of " + std::to_string(payload.size()) + " bytes, expected " +
                     std::to_string(sizeof(inet_diag_msg)));
  auto msg = load<inet_diag_msg>(payload, 0);
  if (msg.idiag_family != AF_INET && msg.idiag_family != AF_INET6)
    return malformed("inet_diag_msg with address family " + std::to_string(msg.idiag_family));
  InetSocketInfo info;
  info.family = msg.idiag_family;
  info.state = msg.idiag_state;
  info.local_port = ntohs(msg.id.idiag_sport);
  info.remote_port = ntohs(msg.id.idiag_dport);
  if (msg.idiag_family == AF_INET) {
    info.local_ip[10] = info.local_ip[11] = 0xff;
    info.remote_ip[10] = info.remote_ip[11] = 0xff;
    std::memcpy(&info.local_ip[12], &msg.id.idiag_src[0], 4);
    std::memcpy(&info.remote_ip[12], &msg.id.idiag_dst[0], 4);
  } else {
    std::memcpy(info.local_ip.data(), msg.id.idiag_src, 16);
    std::memcpy(info.remote_ip.data(), msg.id.idiag_dst, 16);
  }
  info.cookie = cookie_of(msg.id.idiag_cookie);
  info.inode = msg.idiag_inode;
  info.rqueue = msg.idiag_rqueue;
  info.wqueue = msg.idiag_wqueue;
  info.uid = msg.idiag_uid;
  auto attrs = payload.subspan(NLMSG_ALIGN(sizeof(inet_diag_msg)) <= payload.size() ? NLMSG_ALIGN(sizeof(inet_diag_msg))
                                                                                    : payload.size());
  auto walked = for_each_attr(attrs, [&](unsigned type, std::span<const uint8_t> data) {
    if (type == INET_DIAG_SKV6ONLY && !data.empty()) info.v6only = data[0] != 0;
  });
  if (!walked) return walked;
  batch.inet.push_back(info);
  return {};
}

Result<void> decode_unix(std::span<const uint8_t> payload, DiagBatch& batch) {
  if (payload.size() < sizeof(unix_diag_msg))
    return malformed("unix_diag_msg of " + std::to_string(payload.size()) + " bytes, expected " +
                     std::to_string(sizeof(unix_diag_msg)));
  auto msg = load<unix_diag_msg>(payload, 0);
  UnixSocketInfo info;
  info.type = msg.udiag_type;
  info.state = msg.udiag_state;
  info.inode = msg.udiag_ino;
  info.cookie = cookie_of(msg.udiag_cookie);
  auto attrs = payload.subspan(NLMSG_ALIGN(sizeof(unix_diag_msg)) <= payload.size() ? NLMSG_ALIGN(sizeof(unix_diag_msg))
                                                                                    : payload.size());
  Result<void> bad_attr;
  auto walked = for_each_attr(attrs, [&](unsigned type, std::span<const uint8_t> data) {
    if (type == UNIX_DIAG_NAME) {
      info.has_name = true;
      if (!data.empty() && data[0] == 0) {
        info.abstract = true;
        info.name.assign(reinterpret_cast<const char*>(data.data()) + 1, data.size() - 1);
      } else {
        // A path name is NUL-terminated inside the attribute on some kernels; keep the bytes before the NUL.
        size_t len = 0;
        while (len < data.size() && data[len] != 0) ++len;
        info.name.assign(reinterpret_cast<const char*>(data.data()), len);
      }
    } else if (type == UNIX_DIAG_RQLEN) {
      if (data.size() < sizeof(unix_diag_rqlen)) {
        bad_attr = malformed("UNIX_DIAG_RQLEN of " + std::to_string(data.size()) + " bytes");
        return;
      }
      auto rq = load<unix_diag_rqlen>(data, 0);
      info.has_rqlen = true;
      info.rqueue = rq.udiag_rqueue;
      info.wqueue = rq.udiag_wqueue;
    } else if (type == UNIX_DIAG_PEER) {
      if (data.size() < sizeof(uint32_t)) {
        bad_attr = malformed("UNIX_DIAG_PEER of " + std::to_string(data.size()) + " bytes");
        return;
      }
      info.peer_inode = load<uint32_t>(data, 0);
    } else if (type == UNIX_DIAG_ICONS) {
      if (data.size() % sizeof(uint32_t) != 0) {
        bad_attr =
            malformed("UNIX_DIAG_ICONS of " + std::to_string(data.size()) + " bytes, not a whole number of inodes");
        return;
      }
      for (size_t i = 0; i < data.size(); i += sizeof(uint32_t)) info.queued_peers.push_back(load<uint32_t>(data, i));
    } else if (type == UNIX_DIAG_VFS) {
      if (data.size() < sizeof(unix_diag_vfs)) {
        bad_attr = malformed("UNIX_DIAG_VFS of " + std::to_string(data.size()) + " bytes");
        return;
      }
      auto vfs = load<unix_diag_vfs>(data, 0);
      info.has_vfs = true;
      info.vfs_ino = vfs.udiag_vfs_ino;
      info.vfs_dev = vfs.udiag_vfs_dev;
    } else if (type == UNIX_DIAG_UID) {
      if (data.size() < sizeof(uint32_t)) {
        bad_attr = malformed("UNIX_DIAG_UID of " + std::to_string(data.size()) + " bytes");
        return;
      }
      info.has_uid = true;
      info.uid = load<uint32_t>(data, 0);
    }
  });
  if (!walked) return walked;
  if (!bad_attr) return bad_attr;
  batch.unix_sockets.push_back(std::move(info));
  return {};
}

}  // namespace

std::vector<uint8_t> build_inet_dump_request(uint8_t family, uint32_t state_mask, uint32_t seq) {
  inet_diag_req_v2 req{};
  req.sdiag_family = family;
  req.sdiag_protocol = IPPROTO_TCP;
  req.idiag_states = state_mask;
  return frame(req, seq);
}

std::vector<uint8_t> build_inet_lookup_request(const InetSocketInfo& id, uint32_t seq) {
  inet_diag_req_v2 req{};
  req.sdiag_family = id.family;
  req.sdiag_protocol = IPPROTO_TCP;
  req.idiag_states = ~0u;
  req.id.idiag_sport = htons(id.local_port);
  req.id.idiag_dport = htons(id.remote_port);
  if (id.family == AF_INET) {
    std::memcpy(&req.id.idiag_src[0], &id.local_ip[12], 4);
    std::memcpy(&req.id.idiag_dst[0], &id.remote_ip[12], 4);
  } else {
    std::memcpy(req.id.idiag_src, id.local_ip.data(), 16);
    std::memcpy(req.id.idiag_dst, id.remote_ip.data(), 16);
  }
  req.id.idiag_cookie[0] = req.id.idiag_cookie[1] = INET_DIAG_NOCOOKIE;
  return frame(req, seq, /*dump=*/false);
}

std::vector<uint8_t> build_unix_dump_request(uint32_t state_mask, uint32_t seq) {
  unix_diag_req req{};
  req.sdiag_family = AF_UNIX;
  req.udiag_states = state_mask;
  req.udiag_show =
      UDIAG_SHOW_NAME | UDIAG_SHOW_RQLEN | UDIAG_SHOW_PEER | UDIAG_SHOW_ICONS | UDIAG_SHOW_VFS | UDIAG_SHOW_UID;
  return frame(req, seq);
}

Result<void> decode_diag_reply(std::span<const uint8_t> bytes, uint32_t seq, DiagBatch& batch) {
  size_t off = 0;
  while (off < bytes.size()) {
    if (bytes.size() - off < sizeof(nlmsghdr))
      return malformed(std::to_string(bytes.size() - off) + " trailing bytes, shorter than a netlink header");
    auto nlh = load<nlmsghdr>(bytes, off);
    if (nlh.nlmsg_len < sizeof(nlmsghdr) || nlh.nlmsg_len > bytes.size() - off)
      return malformed("netlink message length " + std::to_string(nlh.nlmsg_len) + " at offset " + std::to_string(off) +
                       " does not fit the " + std::to_string(bytes.size()) + "-byte datagram");
    auto payload = bytes.subspan(off + NLMSG_HDRLEN, nlh.nlmsg_len - std::min<size_t>(nlh.nlmsg_len, NLMSG_HDRLEN));
    if (nlh.nlmsg_seq != seq) {
      // A late reply to an earlier request on the same socket; not ours.
    } else if (nlh.nlmsg_type == NLMSG_DONE) {
      batch.done = true;
      return {};
    } else if (nlh.nlmsg_type == NLMSG_ERROR) {
      if (payload.size() < sizeof(int)) return malformed("NLMSG_ERROR without an error code");
      int code = load<int>(payload, 0);
      if (code == 0) return {};  // an ACK
      // The kernel sends a negative errno; anything else (INT_MIN cannot even be negated) is not a reply of its.
      if (code > 0 || code < -4095) return malformed("NLMSG_ERROR with error code " + std::to_string(code));
      return Error::from_errno("sock_diag dump refused by the kernel", -code);
    } else if (nlh.nlmsg_type == SOCK_DIAG_BY_FAMILY) {
      if (payload.empty()) return malformed("empty SOCK_DIAG_BY_FAMILY message");
      // Both inet_diag_msg and unix_diag_msg start with the address family.
      Result<void> r = payload[0] == AF_UNIX ? decode_unix(payload, batch) : decode_inet(payload, batch);
      if (!r) return r;
    }
    off += NLMSG_ALIGN(nlh.nlmsg_len);
  }
  return {};
}

}  // namespace idlepool::wire
