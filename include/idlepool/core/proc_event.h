// One event of the kernel's process connector, as core's process tracker follows it. Decoded from the bytes by
// wire/cn_proc.h; plain data here so that the pure layers do not depend on the codec.
#pragma once

#include <cstdint>

namespace idlepool {

struct ProcEvent {
  enum class Kind {
    kAck,    // reply to a subscription request (PROC_EVENT_NONE)
    kFork,   // pid/tgid: the child; parent_*: the parent
    kExec,   // pid/tgid: the process
    kExit,   // pid/tgid: the task; exit_code: its wait status; parent_*: its parent when the kernel says
    kOther,  // a known event idlepool does not use (uid, gid, sid, ptrace, comm, coredump)
  };
  Kind kind = Kind::kOther;
  uint32_t cpu = 0;  // CPU that sent it; acks: UINT32_MAX before Linux 6.6, the sending CPU since
  uint32_t seq = 0;  // cn_msg sequence number, per CPU (acks before 6.6: the request's)
  uint32_t ack = 0;  // cn_msg ack: request's ack + 1 for acks
  uint64_t timestamp_ns = 0;
  int32_t pid = 0;
  int32_t tgid = 0;
  int32_t parent_pid = 0;
  int32_t parent_tgid = 0;
  uint32_t exit_code = 0;    // wait(2) status: WIFEXITED/WEXITSTATUS/WTERMSIG apply
  uint32_t exit_signal = 0;  // the signal sent to the parent (SIGCHLD), not the one that killed it
  uint32_t ack_error = 0;    // acks: errno of the subscription (0 = subscribed)
};

}  // namespace idlepool
