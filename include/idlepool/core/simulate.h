// Replays a pool's recorded requests through the very policy the daemon runs (decide() and the pool's Rhythm), with
// no kernel and no systemd: how long it would have run, how often a visitor would have met it stopped. Pure.
//
// The replay looks at the pool when the daemon would: at each decision's deadline, at each look its rhythm asks
// for, when it starts, and at a pre-warm's start; a request between looks only moves its latest activity, as the
// probe does. Requests take no time; a cold start takes `wake` (requests in it met a cold pool too). Not modelled:
// the stop rate limit, systemd's start limit and kept-alive connections (each request is its own connection).
#pragma once

#include <cstdint>
#include <vector>

#include "idlepool/core/policy.h"
#include "idlepool/core/rhythm.h"
#include "idlepool/core/time.h"

namespace idlepool {

struct SimResult {
  MonoTime running{0};         // time the pool was up
  uint64_t requests = 0;       // replayed
  uint64_t cold_starts = 0;    // starts by a request that met the pool stopped
  uint64_t cold_requests = 0;  // requests that met a stopped or still starting pool
  uint64_t stops = 0;
  uint64_t prewarms = 0;
  uint64_t prewarm_hits = 0;  // pre-warms whose request came before their hold ended

  SimResult& operator+=(const SimResult& o);
};

// `requests`: times, ascending. The rhythm is the pool's (learning carries over from one replay to the next).
SimResult simulate_pool(const std::vector<MonoTime>& requests, const PoolPolicy& policy, Rhythm& rhythm,
                        MonoTime wake = std::chrono::milliseconds(500));

}  // namespace idlepool
