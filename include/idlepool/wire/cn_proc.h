// The kernel's process connector (NETLINK_CONNECTOR, CN_IDX_PROC) as bytes: decoding its event messages and building
// its subscription request. Pure, so that it can be tested on captured and hand-made fixtures and fuzzed; the socket
// is src/sys/proc_connector.cpp.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace idlepool::wire {

struct ProcEvent {
  enum class Kind {
    kAck,    // reply to a subscription request (PROC_EVENT_NONE)
    kFork,   // pid/tgid: the child; parent_*: the parent
    kExec,   // pid/tgid: the process
    kExit,   // pid/tgid: the task; exit_code: its wait status; parent_*: its parent when the kernel says
    kOther,  // a known event idlepool does not use (uid, gid, sid, ptrace, comm, coredump)
  };
  Kind kind = Kind::kOther;
  uint32_t cpu = 0;   // CPU that sent it; acks: UINT32_MAX before Linux 6.6, the sending CPU since
  uint32_t seq = 0;   // cn_msg sequence number, per CPU (acks before 6.6: the request's)
  uint32_t ack = 0;   // cn_msg ack: request's ack + 1 for acks
  uint64_t timestamp_ns = 0;
  int32_t pid = 0;
  int32_t tgid = 0;
  int32_t parent_pid = 0;
  int32_t parent_tgid = 0;
  uint32_t exit_code = 0;    // wait(2) status: WIFEXITED/WEXITSTATUS/WTERMSIG apply
  uint32_t exit_signal = 0;  // the signal sent to the parent (SIGCHLD), not the one that killed it
  uint32_t ack_error = 0;    // acks: errno of the subscription (0 = subscribed)
};

struct RejectedMessage {
  size_t offset = 0;  // where in the datagram
  std::string reason;
};

struct ProcBatch {
  std::vector<ProcEvent> events;
  std::vector<RejectedMessage> rejected;
};

// Decodes every netlink message in one datagram. A malformed message is rejected with a reason and decoding goes on
// with the next one when its length can be trusted; nothing is read past `bytes`.
ProcBatch decode_proc_events(std::span<const uint8_t> bytes);

// PROC_CN_MCAST_LISTEN / PROC_CN_MCAST_IGNORE request: cn_msg (seq, ack) + the operation, without the netlink
// header (libnl adds it).
enum class ProcSubscription : uint32_t { kListen = 1, kIgnore = 2 };
std::vector<uint8_t> build_proc_subscription(ProcSubscription op, uint32_t seq, uint32_t ack);

}  // namespace idlepool::wire
