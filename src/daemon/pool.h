// What the daemon keeps of one pool: its units as systemd last said, its listeners as the probe knows them, its
// kind's verdict on stopping it, and the bookkeeping of the rules around the policy (stalls, the start limit, wake
// timing). Plain data; the PoolManager keeps it.
#pragma once

#include <array>
#include <optional>
#include <string>
#include <vector>

#include "idlepool/core/address.h"
#include "idlepool/core/policy.h"
#include "idlepool/core/rhythm.h"
#include "idlepool/core/stall.h"
#include "idlepool/core/start_limit.h"
#include "idlepool/core/status.h"
#include "idlepool/core/units.h"
#include "idlepool/kinds/service_kind.h"
#include "idlepool/sys/probe.h"
#include "idlepool/sys/service_manager.h"

namespace idlepool::daemon {

struct Pool {
  std::string unit;
  ServiceUnit service;
  std::vector<SocketUnit> sockets;
  struct Listener {
    std::string socket_unit;
    SocketAddress address;
    std::optional<sys::ListenerId> id;
    std::string canonical_path;  // unix: the path with its directory's symlinks resolved
  };
  std::vector<Listener> listeners;
  std::string kind;  // the service kind that judged it
  // What its kind reads after an answer before waiting on a kept-alive connection (kinds::ServiceKind).
  uint32_t request_end_bytes = 0;

  // The connections of a listener's reading that are idle, kept alive by the client: answered, and nothing received
  // since but what ends a request.
  std::vector<uint32_t> idle_connections(const sys::ListenerSnapshot& s) const {
    std::vector<uint32_t> inodes;
    for (const auto& a : s.answered)
      if (a.received_since <= request_end_bytes) inodes.push_back(a.inode);
    return inodes;
  }
  // When this daemon began watching it: its sockets registered with the probe. A restarted daemon stops nothing
  // before a whole idle window of its own has passed since then.
  std::optional<MonoTime> watched_since;
  kinds::Verdict verdict;
  std::optional<std::string> unsafe_after_stop;
  bool down = true;  // inactive or failed (everything else, activating and deactivating too, is up)
  bool in_watcher = false;
  bool stop_requested = false;  // a stop was asked for and not yet seen through
  // systemd refused the last stop: not asked again before then, and why.
  std::optional<MonoTime> retry_stop_at;
  std::string stop_error;
  bool stopped_by_us = false;
  status::StopCause stop_cause = status::StopCause::kIdle;
  Decision decision;
  std::optional<MonoTime> last_activity;
  std::array<uint64_t, std::size(status::kStopCauses)> stops{};
  std::array<uint64_t, std::size(status::kStallActions)> stalls{};
  uint64_t wakes = 0;
  std::optional<uint64_t> memory_bytes;
  std::optional<uint64_t> memory_at_stop;
  uint64_t memory_released_bytes = 0;
  std::optional<MonoTime> waking_since;      // started by a connection after our stop: time its first use
  std::optional<MonoTime> process_event_at;  // a worker or main exit not yet followed by a decision
  status::LatencyHistogram wake_latency;
  std::optional<MonoTime> visitor_since;  // woken: its visitor waits since then (systemd's start), until a response
  status::LatencyHistogram visitor_wake;
  status::SlowestLastHour slowest_visitor_wake;
  // Its learnt rhythm (idle-timeout = adaptive), the window the last decision used, and its pre-warms.
  Rhythm rhythm;
  Window window;
  bool prewarming = false;  // a pre-warm's start was asked for and not seen yet
  uint64_t prewarms = 0, prewarm_hits = 0;
  bool can_wake = false;
  StallTracker stall;
  StartLimitWindow start_limit;
  // Unit reads asked for and not answered yet, and the signals' values that came meanwhile: a read answers with
  // what PID 1 said when it got to it, the signals since then are newer and are applied again over it.
  uint32_t reads_in_flight = 0;
  std::vector<sys::UnitChanges> patches_during_read;

  void count_stop(status::StopCause c) { ++stops[static_cast<size_t>(c)]; }
  void count_stall(status::StallAction a) { ++stalls[static_cast<size_t>(a)]; }
};

inline bool is_down(const ServiceUnit& s) { return s.active_state == "inactive" || s.active_state == "failed"; }

}  // namespace idlepool::daemon
