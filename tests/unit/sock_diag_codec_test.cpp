// The sock_diag decoder on replies captured from a real kernel (tests/fixtures/sock_diag/capture.py) and on
// hand-made broken ones: each broken reply is an error with a reason, never a read past the end.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/sock_diag.h>
#include <linux/unix_diag.h>
#include <sys/socket.h>

#include <climits>
#include <cstring>
#include <fstream>
#include <iterator>

#include "idlepool/wire/sock_diag.h"

namespace idlepool::wire {
namespace {

std::vector<uint8_t> fixture(const std::string& name) {
  std::ifstream in(std::string(IDLEPOOL_FIXTURES) + "/sock_diag/" + name, std::ios::binary);
  EXPECT_TRUE(in.good()) << name;
  return {std::istreambuf_iterator<char>(in), {}};
}

TEST(SockDiagCodec, DecodesCapturedTcpListeners) {
  auto bytes = fixture("tcp4_listen.bin");
  DiagBatch batch;
  auto r = decode_diag_reply(bytes, 7, batch);
  ASSERT_TRUE(r.ok()) << r.error().message;
  ASSERT_EQ(batch.inet.size(), 2u);
  const auto& l = batch.inet[0];
  EXPECT_EQ(l.family, AF_INET);
  EXPECT_EQ(l.state, kTcpListen);
  EXPECT_EQ(l.local_port, 18888);
  uint32_t loopback = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(0, std::memcmp(&l.local_ip[12], &loopback, 4));
  EXPECT_EQ(l.local_ip[10], 0xff);
  EXPECT_NE(l.cookie, 0u);
  EXPECT_NE(l.inode, 0u);
  EXPECT_EQ(batch.inet[1].local_port, 2024);
  EXPECT_FALSE(batch.done);  // NLMSG_DONE came in the next datagram
}

TEST(SockDiagCodec, DecodesCapturedEstablishedConnections) {
  auto bytes = fixture("tcp4_listen_established.bin");
  DiagBatch batch;
  ASSERT_TRUE(decode_diag_reply(bytes, 8, batch).ok());
  ASSERT_EQ(batch.inet.size(), 4u);
  int accepted = 0, client = 0;
  for (const auto& s : batch.inet) {
    if (s.state != kTcpEstablished) continue;
    if (s.local_port == 18888) ++accepted;
    if (s.remote_port == 18888) ++client;
  }
  EXPECT_EQ(accepted, 1);
  EXPECT_EQ(client, 1);
}

// capture.py: a listener at /tmp/idlepool-fixture.sock with one accepted connection (client inode 21747) and one
// queued (client inode 21749), among the host's other unix sockets.
TEST(SockDiagCodec, DecodesCapturedUnixListenerWithQueueAndPeers) {
  auto bytes = fixture("unix_listen_established.bin");
  DiagBatch batch;
  auto r = decode_diag_reply(bytes, 9, batch);
  ASSERT_TRUE(r.ok()) << r.error().message;
  const UnixSocketInfo* listener = nullptr;
  std::vector<const UnixSocketInfo*> named_connections;
  for (const auto& u : batch.unix_sockets) {
    if (u.name != "/tmp/idlepool-fixture.sock") continue;
    if (u.state == kTcpListen) listener = &u;
    if (u.state == kTcpEstablished) named_connections.push_back(&u);
  }
  ASSERT_NE(listener, nullptr);
  EXPECT_EQ(listener->type, SOCK_STREAM);
  EXPECT_TRUE(listener->has_name);
  EXPECT_FALSE(listener->abstract);
  EXPECT_TRUE(listener->has_rqlen);
  EXPECT_EQ(listener->rqueue, 1u);
  EXPECT_EQ(listener->wqueue, 64u);  // the listen() backlog
  EXPECT_NE(listener->cookie, 0u);
  EXPECT_EQ(listener->queued_peers, std::vector<uint32_t>{21749});
  // The accepted connection carries the listener's name and points at its client; the queued one is not listed.
  ASSERT_EQ(named_connections.size(), 1u);
  EXPECT_EQ(named_connections[0]->peer_inode, 21747u);
  int unnamed_clients = 0;
  for (const auto& u : batch.unix_sockets)
    if (u.inode == 21747 || u.inode == 21749) {
      EXPECT_FALSE(u.has_name);
      ++unnamed_clients;
    }
  EXPECT_EQ(unnamed_clients, 2);
}

TEST(SockDiagCodec, IgnoresRepliesToOtherSequenceNumbers) {
  auto bytes = fixture("tcp4_listen.bin");
  DiagBatch batch;
  ASSERT_TRUE(decode_diag_reply(bytes, 99, batch).ok());
  EXPECT_TRUE(batch.inet.empty());
}

// ---- hand-made messages ----

std::vector<uint8_t> message(uint16_t type, const std::vector<uint8_t>& payload, uint32_t seq = 1) {
  nlmsghdr h{};
  h.nlmsg_len = NLMSG_LENGTH(payload.size());
  h.nlmsg_type = type;
  h.nlmsg_seq = seq;
  std::vector<uint8_t> out(NLMSG_SPACE(payload.size()), 0);
  std::memcpy(out.data(), &h, sizeof(h));
  if (!payload.empty()) std::memcpy(out.data() + NLMSG_HDRLEN, payload.data(), payload.size());
  return out;
}

template <class T>
std::vector<uint8_t> bytes_of(const T& v) {
  std::vector<uint8_t> out(sizeof(T));
  std::memcpy(out.data(), &v, sizeof(T));
  return out;
}

std::vector<uint8_t> unix_msg_with_attr(uint16_t attr_type, const std::vector<uint8_t>& attr_payload,
                                        uint16_t declared_len = 0) {
  unix_diag_msg m{};
  m.udiag_family = AF_UNIX;
  m.udiag_type = SOCK_STREAM;
  m.udiag_state = kTcpListen;
  auto p = bytes_of(m);
  rtattr a{};
  a.rta_type = attr_type;
  a.rta_len = declared_len ? declared_len : static_cast<uint16_t>(RTA_LENGTH(attr_payload.size()));
  auto ab = bytes_of(a);
  p.insert(p.end(), ab.begin(), ab.end());
  p.insert(p.end(), attr_payload.begin(), attr_payload.end());
  while (p.size() % 4) p.push_back(0);
  return p;
}

TEST(SockDiagCodec, DoneEndsTheDump) {
  DiagBatch batch;
  ASSERT_TRUE(decode_diag_reply(message(NLMSG_DONE, {0, 0, 0, 0}), 1, batch).ok());
  EXPECT_TRUE(batch.done);
}

TEST(SockDiagCodec, AbstractNamesLoseTheirLeadingNul) {
  std::vector<uint8_t> name{0, 'a', 'b', 'c'};
  DiagBatch batch;
  ASSERT_TRUE(decode_diag_reply(message(SOCK_DIAG_BY_FAMILY, unix_msg_with_attr(UNIX_DIAG_NAME, name)), 1, batch).ok());
  ASSERT_EQ(batch.unix_sockets.size(), 1u);
  EXPECT_TRUE(batch.unix_sockets[0].abstract);
  EXPECT_EQ(batch.unix_sockets[0].name, "abc");
}

struct Broken {
  const char* name;
  std::vector<uint8_t> bytes;
  const char* says;
};

std::vector<Broken> broken_replies() {
  std::vector<Broken> out;
  auto done = message(NLMSG_DONE, {0, 0, 0, 0});
  out.push_back(
      {"truncated header", std::vector<uint8_t>(done.begin(), done.begin() + 10), "shorter than a netlink header"});
  auto overlong = done;
  reinterpret_cast<nlmsghdr*>(overlong.data())->nlmsg_len = 4096;
  out.push_back({"length past the datagram", overlong, "does not fit"});
  auto tiny = done;
  reinterpret_cast<nlmsghdr*>(tiny.data())->nlmsg_len = 4;
  out.push_back({"length below a header", tiny, "does not fit"});
  out.push_back({"short inet message", message(SOCK_DIAG_BY_FAMILY, {AF_INET, 10, 0, 0}), "inet_diag_msg of 4 bytes"});
  out.push_back({"short unix message", message(SOCK_DIAG_BY_FAMILY, {AF_UNIX, 1, 10, 0}), "unix_diag_msg of 4 bytes"});
  out.push_back({"empty payload", message(SOCK_DIAG_BY_FAMILY, {}), "empty"});
  std::vector<uint8_t> odd_family(sizeof(inet_diag_msg), 0);
  odd_family[0] = 42;
  out.push_back({"unknown family", message(SOCK_DIAG_BY_FAMILY, odd_family), "address family 42"});
  out.push_back({"attribute overrun", message(SOCK_DIAG_BY_FAMILY, unix_msg_with_attr(UNIX_DIAG_NAME, {'/', 'x'}, 200)),
                 "overruns"});
  out.push_back(
      {"short rqlen", message(SOCK_DIAG_BY_FAMILY, unix_msg_with_attr(UNIX_DIAG_RQLEN, {1, 2})), "UNIX_DIAG_RQLEN"});
  out.push_back(
      {"short peer", message(SOCK_DIAG_BY_FAMILY, unix_msg_with_attr(UNIX_DIAG_PEER, {1, 2})), "UNIX_DIAG_PEER"});
  out.push_back({"ragged icons", message(SOCK_DIAG_BY_FAMILY, unix_msg_with_attr(UNIX_DIAG_ICONS, {1, 2, 3, 4, 5})),
                 "UNIX_DIAG_ICONS"});
  out.push_back({"error reply", message(NLMSG_ERROR, bytes_of(-EPERM)), "refused by the kernel"});
  out.push_back({"error without code", message(NLMSG_ERROR, {1}), "without an error code"});
  // Found by fuzz_sock_diag: INT_MIN cannot be negated; no errno is positive or below -4095.
  out.push_back({"error code INT_MIN", message(NLMSG_ERROR, bytes_of(INT_MIN)), "error code -2147483648"});
  out.push_back({"positive error code", message(NLMSG_ERROR, bytes_of(5)), "error code 5"});
  return out;
}

TEST(SockDiagCodec, RejectsBrokenRepliesWithAReason) {
  for (const auto& b : broken_replies()) {
    DiagBatch batch;
    auto r = decode_diag_reply(b.bytes, 1, batch);
    ASSERT_FALSE(r.ok()) << b.name;
    EXPECT_NE(r.error().message.find(b.says), std::string::npos) << b.name << ": " << r.error().message;
  }
}

TEST(SockDiagCodec, BuildsDumpRequests) {
  auto req = build_inet_dump_request(AF_INET6, 1u << kTcpListen, 5);
  ASSERT_EQ(req.size(), NLMSG_SPACE(sizeof(inet_diag_req_v2)));
  nlmsghdr h;
  std::memcpy(&h, req.data(), sizeof(h));
  EXPECT_EQ(h.nlmsg_type, SOCK_DIAG_BY_FAMILY);
  EXPECT_EQ(h.nlmsg_seq, 5u);
  EXPECT_TRUE(h.nlmsg_flags & NLM_F_DUMP);
  inet_diag_req_v2 r;
  std::memcpy(&r, req.data() + NLMSG_HDRLEN, sizeof(r));
  EXPECT_EQ(r.sdiag_family, AF_INET6);
  EXPECT_EQ(r.sdiag_protocol, IPPROTO_TCP);
  EXPECT_EQ(r.idiag_states, 1u << kTcpListen);
  auto ureq = build_unix_dump_request(1u << kTcpListen, 6);
  unix_diag_req u;
  std::memcpy(&u, ureq.data() + NLMSG_HDRLEN, sizeof(u));
  EXPECT_EQ(u.sdiag_family, AF_UNIX);
  EXPECT_EQ(u.udiag_show, unsigned{UDIAG_SHOW_NAME | UDIAG_SHOW_RQLEN | UDIAG_SHOW_PEER | UDIAG_SHOW_ICONS |
                                   UDIAG_SHOW_VFS | UDIAG_SHOW_UID});
}

}  // namespace
}  // namespace idlepool::wire
