// The process-connector decoder on datagrams captured from a real kernel (tests/fixtures/cn_proc/capture.py; the
// pids are in pids.txt) and on hand-made broken ones: each broken message is rejected with a reason, never read past.
#include <gtest/gtest.h>
#include <linux/cn_proc.h>
#include <linux/connector.h>
#include <linux/netlink.h>
#include <signal.h>

#include <cstring>
#include <fstream>
#include <iterator>
#include <map>

#include "idlepool/core/process_tracker.h"
#include "idlepool/wire/cn_proc.h"

namespace idlepool::wire {
namespace {

std::vector<uint8_t> fixture(const std::string& name) {
  std::ifstream in(std::string(IDLEPOOL_FIXTURES) + "/cn_proc/" + name, std::ios::binary);
  EXPECT_TRUE(in.good()) << name;
  return {std::istreambuf_iterator<char>(in), {}};
}

std::map<std::string, int32_t> pids() {
  std::ifstream in(std::string(IDLEPOOL_FIXTURES) + "/cn_proc/pids.txt");
  std::map<std::string, int32_t> out;
  std::string name;
  int32_t pid;
  while (in >> name >> pid) out[name] = pid;
  return out;
}

ProcEvent only_event(const std::string& name) {
  auto batch = decode_proc_events(fixture(name));
  EXPECT_TRUE(batch.rejected.empty()) << name << ": " << (batch.rejected.empty() ? "" : batch.rejected[0].reason);
  EXPECT_EQ(batch.events.size(), 1u) << name;
  return batch.events.empty() ? ProcEvent{} : batch.events[0];
}

TEST(CnProcCodec, DecodesCapturedAck) {
  auto ev = only_event("ack.bin");
  EXPECT_EQ(ev.kind, ProcEvent::Kind::kAck);
  EXPECT_EQ(ev.ack, 4243u);  // the subscription's ack (4242) + 1
  EXPECT_EQ(ev.ack_error, 0u);
}

TEST(CnProcCodec, DecodesCapturedForkExecExit) {
  auto p = pids();
  auto fork = only_event("fork.bin");
  EXPECT_EQ(fork.kind, ProcEvent::Kind::kFork);
  EXPECT_EQ(fork.pid, p["true"]);
  EXPECT_EQ(fork.tgid, p["true"]);
  EXPECT_EQ(fork.parent_tgid, p["parent"]);
  EXPECT_GT(fork.timestamp_ns, 0u);
  auto exec = only_event("exec.bin");
  EXPECT_EQ(exec.kind, ProcEvent::Kind::kExec);
  EXPECT_EQ(exec.pid, p["true"]);
  auto exit0 = only_event("exit0.bin");
  EXPECT_EQ(exit0.kind, ProcEvent::Kind::kExit);
  EXPECT_EQ(exit0.pid, p["true"]);
  EXPECT_EQ(exit0.parent_tgid, p["parent"]);
  EXPECT_EQ(ExitStatus::from_wait_status(exit0.exit_code), (ExitStatus{true, false, 0}));
  auto killed = only_event("exit_kill.bin");
  EXPECT_EQ(killed.pid, p["killed"]);
  EXPECT_EQ(ExitStatus::from_wait_status(killed.exit_code), (ExitStatus{true, true, SIGKILL}));
  EXPECT_EQ(ExitStatus::from_wait_status(killed.exit_code).to_string(), "killed by signal 9");
}

// ---- hand-made messages ----

std::vector<uint8_t> message(uint32_t what, const std::vector<uint8_t>& data, uint16_t nl_type = NLMSG_DONE,
                             uint32_t idx = CN_IDX_PROC, int len_adjust = 0) {
  std::vector<uint8_t> ev(16, 0);
  std::memcpy(ev.data(), &what, 4);
  ev.insert(ev.end(), data.begin(), data.end());
  cn_msg cn{};
  cn.id.idx = idx;
  cn.id.val = CN_VAL_PROC;
  cn.len = static_cast<uint16_t>(static_cast<int>(ev.size()) + len_adjust);
  std::vector<uint8_t> payload(sizeof(cn));
  std::memcpy(payload.data(), &cn, sizeof(cn));
  payload.insert(payload.end(), ev.begin(), ev.end());
  nlmsghdr h{};
  h.nlmsg_len = NLMSG_LENGTH(payload.size());
  h.nlmsg_type = nl_type;
  std::vector<uint8_t> out(NLMSG_SPACE(payload.size()), 0);
  std::memcpy(out.data(), &h, sizeof(h));
  std::memcpy(out.data() + NLMSG_HDRLEN, payload.data(), payload.size());
  return out;
}

std::vector<uint8_t> ints(std::initializer_list<int32_t> v) {
  std::vector<uint8_t> out(v.size() * 4);
  std::memcpy(out.data(), std::data(v), out.size());
  return out;
}

TEST(CnProcCodec, DecodesSeveralMessagesInOneDatagram) {
  auto a = message(proc_event::PROC_EVENT_FORK, ints({10, 10, 11, 11}));
  auto b = message(proc_event::PROC_EVENT_EXIT, ints({11, 11, 256 * 3, 17}));
  auto c = message(proc_event::PROC_EVENT_COMM, std::vector<uint8_t>(24, 0));
  a.insert(a.end(), b.begin(), b.end());
  a.insert(a.end(), c.begin(), c.end());
  auto batch = decode_proc_events(a);
  ASSERT_TRUE(batch.rejected.empty());
  ASSERT_EQ(batch.events.size(), 3u);
  EXPECT_EQ(batch.events[0].kind, ProcEvent::Kind::kFork);
  EXPECT_EQ(batch.events[0].parent_tgid, 10);
  EXPECT_EQ(batch.events[1].kind, ProcEvent::Kind::kExit);
  EXPECT_EQ(ExitStatus::from_wait_status(batch.events[1].exit_code).value, 3);
  EXPECT_EQ(batch.events[1].parent_pid, 0);  // no parent fields in this old-style exit event
  EXPECT_EQ(batch.events[2].kind, ProcEvent::Kind::kOther);
}

struct Broken {
  const char* name;
  std::vector<uint8_t> bytes;
  const char* says;
};

TEST(CnProcCodec, RejectsBrokenMessagesWithAReason) {
  auto good = message(proc_event::PROC_EVENT_FORK, ints({1, 1, 2, 2}));
  auto overlong = good;
  reinterpret_cast<nlmsghdr*>(overlong.data())->nlmsg_len = 4000;
  std::vector<Broken> cases = {
      {"truncated header", std::vector<uint8_t>(good.begin(), good.begin() + 9), "shorter than a netlink header"},
      {"length past the datagram", overlong, "does not fit"},
      {"truncated cn_msg", std::vector<uint8_t>{20, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0},
       "shorter than its header"},
      {"other connector", message(proc_event::PROC_EVENT_FORK, ints({1, 1, 2, 2}), NLMSG_DONE, 7),
       "not the process connector"},
      {"cn length overrun", message(proc_event::PROC_EVENT_FORK, ints({1, 1, 2, 2}), NLMSG_DONE, CN_IDX_PROC, 64),
       "overruns"},
      {"event shorter than its header", message(proc_event::PROC_EVENT_FORK, {}, NLMSG_DONE, CN_IDX_PROC, -8),
       "shorter than its header"},
      {"short fork", message(proc_event::PROC_EVENT_FORK, ints({1, 1})), "fork event with 8 data bytes, needs 16"},
      {"short exit", message(proc_event::PROC_EVENT_EXIT, ints({1})), "exit event with 4 data bytes, needs 16"},
      {"short exec", message(proc_event::PROC_EVENT_EXEC, ints({1})), "exec event"},
      {"unknown type", message(0x1234, ints({1, 1, 1, 1})), "unknown event type 0x1234"},
      {"wrong netlink type", message(proc_event::PROC_EVENT_FORK, ints({1, 1, 2, 2}), 42), "unexpected netlink"},
      {"netlink error", message(proc_event::PROC_EVENT_FORK, ints({1, 1, 2, 2}), NLMSG_ERROR), "netlink error"},
  };
  std::vector<uint8_t> oversized = message(proc_event::PROC_EVENT_FORK, std::vector<uint8_t>(2000, 0));
  cases.push_back({"oversized event", oversized, "oversized event of 2016 bytes"});
  for (const auto& c : cases) {
    auto batch = decode_proc_events(c.bytes);
    EXPECT_TRUE(batch.events.empty()) << c.name;
    ASSERT_FALSE(batch.rejected.empty()) << c.name;
    EXPECT_NE(batch.rejected[0].reason.find(c.says), std::string::npos) << c.name << ": " << batch.rejected[0].reason;
  }
}

TEST(CnProcCodec, KeepsGoodMessagesAroundABadOne) {
  auto a = message(proc_event::PROC_EVENT_FORK, ints({1, 1, 2, 2}));
  auto bad = message(0x1234, ints({0, 0, 0, 0}));
  auto c = message(proc_event::PROC_EVENT_EXEC, ints({2, 2}));
  a.insert(a.end(), bad.begin(), bad.end());
  a.insert(a.end(), c.begin(), c.end());
  auto batch = decode_proc_events(a);
  EXPECT_EQ(batch.events.size(), 2u);
  ASSERT_EQ(batch.rejected.size(), 1u);
  EXPECT_EQ(batch.rejected[0].offset, NLMSG_SPACE(sizeof(cn_msg) + 32));
}

TEST(CnProcCodec, BuildsSubscriptions) {
  auto b = build_proc_subscription(ProcSubscription::kListen, 9, 5);
  ASSERT_EQ(b.size(), sizeof(cn_msg) + 4);
  cn_msg cn;
  std::memcpy(&cn, b.data(), sizeof(cn));
  EXPECT_EQ(cn.id.idx, unsigned{CN_IDX_PROC});
  EXPECT_EQ(cn.seq, 9u);
  EXPECT_EQ(cn.ack, 5u);
  EXPECT_EQ(cn.len, 4u);
  uint32_t op;
  std::memcpy(&op, b.data() + sizeof(cn), 4);
  EXPECT_EQ(op, unsigned{PROC_CN_MCAST_LISTEN});
}

}  // namespace
}  // namespace idlepool::wire
