// The kernel's process connector (NETLINK_CONNECTOR, CN_IDX_PROC) as bytes: decoding its event messages and building
// its subscription request. Pure, so that it can be tested on captured and hand-made fixtures and fuzzed; the socket
// is src/sys/proc_connector.cpp.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "idlepool/core/proc_event.h"

namespace idlepool::wire {

// Decoded into core's ProcEvent (core/proc_event.h): the tracker reads it, this layer produces it.
using ProcEvent = ::idlepool::ProcEvent;

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
