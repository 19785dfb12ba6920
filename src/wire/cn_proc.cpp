#include "idlepool/wire/cn_proc.h"

#include <linux/cn_proc.h>
#include <linux/connector.h>
#include <linux/netlink.h>

#include <cstdio>
#include <cstring>

namespace idlepool::wire {
namespace {

// Layout of struct proc_event (linux/cn_proc.h): what, cpu, timestamp_ns, then the union of event data.
constexpr size_t kEventHeader = 16;
// Bytes of event data each used kind needs; later kernels may append fields, never move them.
constexpr size_t kForkData = 16;    // parent_pid, parent_tgid, child_pid, child_tgid
constexpr size_t kExecData = 8;     // process_pid, process_tgid
constexpr size_t kExitData = 16;    // process_pid, process_tgid, exit_code, exit_signal
constexpr size_t kExitParent = 24;  // + parent_pid, parent_tgid (Linux 4.19+)
constexpr size_t kAckData = 4;
// No proc_event is near this; a cn_msg claiming more is corrupt.
constexpr size_t kMaxEvent = 1024;

template <class T>
T load(std::span<const uint8_t> bytes, size_t offset) {
  T v{};
  std::memcpy(&v, bytes.data() + offset, sizeof(T));
  return v;
}

std::string hex(uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof(buf), "0x%x", v);
  return buf;
}

// Decodes one cn_msg payload into `ev`; returns an empty string or why it is rejected.
std::string decode_cn(std::span<const uint8_t> payload, ProcEvent& ev) {
  if (payload.size() < sizeof(cn_msg))
    return "connector message of " + std::to_string(payload.size()) + " bytes, shorter than its header";
  auto msg = load<cn_msg>(payload, 0);
  if (msg.id.idx != CN_IDX_PROC || msg.id.val != CN_VAL_PROC)
    return "connector message for " + std::to_string(msg.id.idx) + "/" + std::to_string(msg.id.val) +
           ", not the process connector";
  if (msg.len > payload.size() - sizeof(cn_msg))
    return "event length " + std::to_string(msg.len) + " overruns its " +
           std::to_string(payload.size() - sizeof(cn_msg)) + "-byte message";
  if (msg.len > kMaxEvent) return "oversized event of " + std::to_string(msg.len) + " bytes";
  if (msg.len < kEventHeader) return "event of " + std::to_string(msg.len) + " bytes, shorter than its header";
  auto data = payload.subspan(sizeof(cn_msg), msg.len);
  ev.seq = msg.seq;
  ev.ack = msg.ack;
  uint32_t what = load<uint32_t>(data, 0);
  ev.cpu = load<uint32_t>(data, 4);
  ev.timestamp_ns = load<uint64_t>(data, 8);
  auto body = data.subspan(kEventHeader);
  auto need = [&](size_t n, const char* kind) -> std::string {
    if (body.size() >= n) return {};
    return std::string(kind) + " event with " + std::to_string(body.size()) + " data bytes, needs " + std::to_string(n);
  };
  switch (what) {
    case proc_event::PROC_EVENT_NONE: {
      if (auto e = need(kAckData, "ack"); !e.empty()) return e;
      ev.kind = ProcEvent::Kind::kAck;
      ev.ack_error = load<uint32_t>(body, 0);
      return {};
    }
    case proc_event::PROC_EVENT_FORK: {
      if (auto e = need(kForkData, "fork"); !e.empty()) return e;
      ev.kind = ProcEvent::Kind::kFork;
      ev.parent_pid = load<int32_t>(body, 0);
      ev.parent_tgid = load<int32_t>(body, 4);
      ev.pid = load<int32_t>(body, 8);
      ev.tgid = load<int32_t>(body, 12);
      return {};
    }
    case proc_event::PROC_EVENT_EXEC: {
      if (auto e = need(kExecData, "exec"); !e.empty()) return e;
      ev.kind = ProcEvent::Kind::kExec;
      ev.pid = load<int32_t>(body, 0);
      ev.tgid = load<int32_t>(body, 4);
      return {};
    }
    case proc_event::PROC_EVENT_EXIT: {
      if (auto e = need(kExitData, "exit"); !e.empty()) return e;
      ev.kind = ProcEvent::Kind::kExit;
      ev.pid = load<int32_t>(body, 0);
      ev.tgid = load<int32_t>(body, 4);
      ev.exit_code = load<uint32_t>(body, 8);
      ev.exit_signal = load<uint32_t>(body, 12);
      if (body.size() >= kExitParent) {
        ev.parent_pid = load<int32_t>(body, 16);
        ev.parent_tgid = load<int32_t>(body, 20);
      }
      return {};
    }
    case proc_event::PROC_EVENT_UID:
    case proc_event::PROC_EVENT_GID:
    case proc_event::PROC_EVENT_SID:
    case proc_event::PROC_EVENT_PTRACE:
    case proc_event::PROC_EVENT_COMM:
    case proc_event::PROC_EVENT_COREDUMP:
      ev.kind = ProcEvent::Kind::kOther;
      return {};
    default:
      return "unknown event type " + hex(what);
  }
}

}  // namespace

ProcBatch decode_proc_events(std::span<const uint8_t> bytes) {
  ProcBatch batch;
  size_t off = 0;
  while (off < bytes.size()) {
    if (bytes.size() - off < sizeof(nlmsghdr)) {
      batch.rejected.push_back(
          {off, std::to_string(bytes.size() - off) + " trailing bytes, shorter than a netlink header"});
      break;
    }
    auto nlh = load<nlmsghdr>(bytes, off);
    if (nlh.nlmsg_len < sizeof(nlmsghdr) || nlh.nlmsg_len > bytes.size() - off) {
      // The length cannot be trusted, so neither can anything after it.
      batch.rejected.push_back({off, "netlink message length " + std::to_string(nlh.nlmsg_len) + " does not fit the " +
                                         std::to_string(bytes.size() - off) + " bytes left in the datagram"});
      break;
    }
    auto payload = bytes.subspan(off + NLMSG_HDRLEN, nlh.nlmsg_len - NLMSG_HDRLEN);
    if (nlh.nlmsg_type == NLMSG_ERROR) {
      batch.rejected.push_back({off, "netlink error message"});
    } else if (nlh.nlmsg_type != NLMSG_DONE) {
      // The connector sends every message as NLMSG_DONE.
      batch.rejected.push_back({off, "unexpected netlink message type " + std::to_string(nlh.nlmsg_type)});
    } else {
      ProcEvent ev;
      std::string why = decode_cn(payload, ev);
      if (why.empty()) {
        batch.events.push_back(ev);
      } else {
        batch.rejected.push_back({off, why});
      }
    }
    off += NLMSG_ALIGN(nlh.nlmsg_len);
  }
  return batch;
}

std::vector<uint8_t> build_proc_subscription(ProcSubscription op, uint32_t seq, uint32_t ack) {
  std::vector<uint8_t> out(sizeof(cn_msg) + sizeof(uint32_t), 0);
  cn_msg msg{};
  msg.id.idx = CN_IDX_PROC;
  msg.id.val = CN_VAL_PROC;
  msg.seq = seq;
  msg.ack = ack;
  msg.len = sizeof(uint32_t);
  std::memcpy(out.data(), &msg, sizeof(msg));
  uint32_t v = static_cast<uint32_t>(op);
  std::memcpy(out.data() + sizeof(msg), &v, sizeof(v));
  return out;
}

}  // namespace idlepool::wire
