// The kernel probe seen from user space: loads bpf/idlepool.bpf.c at the cheapest hook tier the running kernel
// allows, registers pools' listening sockets by address and reads what the probe counted on them.
//
// Why a class of its own: it owns every libbpf object (skeleton, links) and is the only code that touches the
// probe's maps, so the ABI in include/idlepool/probe_abi.h is used in exactly two places (here and the BPF side).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "idlepool/core/address.h"
#include "idlepool/result.h"

namespace idlepool::sys {

// A tier of hooks (bpf/idlepool.bpf.c explains each).
enum class Tier { kFentry, kSock, kSyscall, kUnavailable };
std::string_view to_string(Tier tier);

// What the caller asks for: the cheapest that works, or one tier exactly (for tests and for operators who know).
enum class TierChoice { kAuto, kFentry, kSock, kSyscall };
Result<TierChoice> parse_tier_choice(std::string_view text);

// Which tier serves each counter, and why cheaper tiers were passed over.
struct TierReport {
  Tier loaded = Tier::kUnavailable;
  Tier accepts = Tier::kUnavailable;
  Tier requests = Tier::kUnavailable;
  Tier tcp_closes = Tier::kUnavailable;
  Tier unix_closes = Tier::kUnavailable;  // only the fentry tier sees unix connections close
  std::vector<std::string> passed_over;   // "fentry: <reason>", in the order tried
};

struct ProbeOptions {
  TierChoice tier = TierChoice::kAuto;
  // Kernel BTF; the probe cannot load without it (CONFIG_DEBUG_INFO_BTF).
  std::string btf_path = "/sys/kernel/btf/vmlinux";
  // Only listening sockets this user created are counted on (systemd's socket units are root's); a same-named socket
  // a site user bound is not a pool's. Unset: anyone's (idlepool-probe pointed at a socket by hand).
  std::optional<uint32_t> trusted_owner = 0;
};

using ListenerId = uint32_t;

// One registered listening socket, read at one moment.
// An accepted connection whose server answered and has nothing to read or send: its socket inode, and the bytes the
// server received on it since its last send.
struct AnsweredConnection {
  uint32_t inode = 0;
  uint32_t received_since = 0;
};

struct ListenerSnapshot {
  ListenerId id = 0;
  SocketAddress address;             // as registered
  SocketAddress bound;               // what the socket is bound to (e.g. [::]:8888 for 127.0.0.1:8888)
  bool listening = false;            // a listening socket exists at the address now
  uint64_t cookie = 0;               // socket cookie of the listener
  uint32_t inode = 0;                // socket inode of the listener
  uint64_t accepts = 0;              // connections accepted, by any process
  std::optional<uint64_t> requests;  // request cycles, counted as their responses start; empty when the tier cannot
  std::optional<uint64_t> closes;    // accepted connections seen closing; empty when the tier cannot see them
  uint32_t active = 0;               // accepted connections not yet closed (sock_diag, now), answered ones included
  // Accepted connections the server has answered on, with no byte waiting either way: those that received nothing
  // since (or only what ends a request, see kinds::ServiceKind::request_end_bytes) are idle, kept alive by the client.
  std::vector<AnsweredConnection> answered;
  uint32_t backlog = 0;            // connections waiting to be accepted (sock_diag, now)
  uint64_t last_activity_ns = 0;   // CLOCK_MONOTONIC ns of the latest accept/request/response/close; 0 = none yet
  uint64_t first_use_ns = 0;       // CLOCK_MONOTONIC ns of the first accept or request since rearm(); 0 = none yet
  uint64_t first_arrival_ns = 0;   // ... of the first connection that reached it since rearm(); 0 = none yet
  uint64_t first_response_ns = 0;  // ... of the first response's start since rearm(); 0 = none yet (or no tier counts)
  // Unix: the file the listener is bound to, (st_ino, st_dev), when the kernel says (a nudge connects to it alone).
  std::optional<std::pair<uint64_t, uint32_t>> unix_file;
};

// What the daemon needs of the probe: a seam, so that its logic can be driven by a fake in unit tests.
class ListenerSource {
 public:
  virtual ~ListenerSource() = default;
  virtual Result<ListenerId> add(const SocketAddress& address) = 0;
  // add() for each address, in order; the real probe reads the kernel's sockets once for all of them.
  virtual std::vector<Result<ListenerId>> add_many(const std::vector<SocketAddress>& addresses) {
    std::vector<Result<ListenerId>> out;
    out.reserve(addresses.size());
    for (const auto& a : addresses) out.push_back(add(a));
    return out;
  }
  virtual Result<void> remove(ListenerId id) = 0;
  virtual Result<std::vector<ListenerSnapshot>> read() = 0;
  // Forgets the first use of `id`'s socket, so that the next one is reported (to time a wake).
  virtual void rearm(ListenerId id) = 0;
};

class Probe final : public ListenerSource {
 public:
  // Loads and attaches the probe. Errors say which tiers were tried and why each failed.
  static Result<std::unique_ptr<Probe>> load(const ProbeOptions& options);
  ~Probe() override;
  Probe(const Probe&) = delete;
  Probe& operator=(const Probe&) = delete;

  const TierReport& tiers() const;

  // Finds the listening socket at `address` (by sock_diag, no fd needed) and starts counting on it. Registering the
  // same socket twice returns a second id for it; counting stops when every id of it is removed.
  Result<ListenerId> add(const SocketAddress& address) override;
  // The same, with one socket dump for all: registering a thousand pools at start is one pass, not a thousand.
  std::vector<Result<ListenerId>> add_many(const std::vector<SocketAddress>& addresses) override;
  // Stops counting on the socket of `id` and forgets it.
  Result<void> remove(ListenerId id) override;
  // Every registered listener, with gauges read now. A listener that was replaced (socket unit restarted) is
  // followed to its new socket; its counters carry on.
  Result<std::vector<ListenerSnapshot>> read() override;
  void rearm(ListenerId id) override;

  class Impl;

 private:
  explicit Probe(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace idlepool::sys
