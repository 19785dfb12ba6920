// The pools as the status model (core/status.h) and the audit idlepoolctl check shows: read-only views of what the
// manager knows, from its last decisions and the probe's last reading.
#include <algorithm>

#include "pool_manager.h"

namespace idlepool::daemon {
namespace {

status::Socket socket_status(const Pool& pool, const Pool::Listener& l,
                             const std::map<sys::ListenerId, sys::ListenerSnapshot>& counters) {
  status::Socket s;
  s.unit = l.socket_unit;
  s.address = l.address.to_string();
  auto unit =
      std::find_if(pool.sockets.begin(), pool.sockets.end(), [&](const auto& x) { return x.name == l.socket_unit; });
  s.listening = unit != pool.sockets.end() && unit->listening();
  if (l.id)
    if (auto c = counters.find(*l.id); c != counters.end()) {
      auto idle = static_cast<uint32_t>(pool.idle_connections(c->second).size());
      s.counters = status::SocketCounters{c->second.accepts, c->second.requests,
                                          c->second.active - std::min(idle, c->second.active), c->second.backlog, idle};
    }
  return s;
}

}  // namespace

std::vector<status::Pool> PoolManager::status() const {
  std::vector<status::Pool> out;
  out.reserve(pools_.size());
  const MonoTime now = deps_.now();
  for (const auto& [unit, pool] : pools_) {
    status::Pool s;
    s.unit = unit;
    s.kind = pool.kind;
    s.active_state = pool.service.active_state;
    s.sub_state = pool.service.sub_state;
    s.running = pool.service.running();
    for (const auto& l : pool.listeners) s.sockets.push_back(socket_status(pool, l, last_counters_));
    if (auto p = deps_.processes.processes(unit))
      s.processes = status::Processes{p->processes, p->workers, p->main_pid};
    s.decision = pool.decision;
    s.policy = policy_for(unit);
    s.can_wake = pool.can_wake;
    s.unsafe = pool.unsafe_after_stop ? pool.unsafe_after_stop : pool.verdict.unsafe;
    s.warnings = pool.verdict.warnings;
    s.stop_requested = pool.stop_requested;
    s.last_activity = pool.last_activity;
    s.stops = pool.stops;
    s.wakes = pool.wakes;
    s.stalls = pool.stalls;
    s.memory_bytes = pool.memory_bytes;
    s.memory_released_bytes = pool.memory_released_bytes;
    s.wake_latency = pool.wake_latency;
    s.visitor_wake = pool.visitor_wake;
    s.slowest_visitor_wake = pool.slowest_visitor_wake.at(now);
    s.window = pool.window;
    s.prewarms = pool.prewarms;
    s.prewarm_hits = pool.prewarm_hits;
    s.visit_periods = pool.rhythm.recent.in_order();
    if (pool.down && pool.stopped_by_us)
      if (auto plan = pool.rhythm.next_prewarm(s.policy)) s.prewarm_at = plan->start;
    out.push_back(std::move(s));
  }
  return out;
}

std::vector<status::Audit> PoolManager::audit() const {
  std::vector<status::Audit> out;
  for (const auto& [unit, pool] : pools_) {
    status::Audit a;
    a.unit = unit;
    if (pool.sockets.empty())
      a.problems.push_back("not socket-activated: no .socket unit triggers it, so it could not wake again");
    for (const auto& sock : pool.sockets)
      if (!sock.listening()) a.problems.push_back(sock.name + " is " + sock.active_state + ", not listening");
    for (const auto& l : pool.listeners)
      if (!l.id) a.problems.push_back("the probe does not watch " + l.address.to_string());
    if (pool.verdict.unsafe) a.problems.push_back(*pool.verdict.unsafe);
    if (pool.unsafe_after_stop) a.problems.push_back(*pool.unsafe_after_stop);
    a.warnings = pool.verdict.warnings;
    out.push_back(std::move(a));
  }
  return out;
}

std::string PoolManager::summary() const {
  size_t running = 0, stopped = 0;
  uint64_t stops = 0, wakes = 0;
  for (const auto& [unit, pool] : pools_) {
    if (pool.service.running()) ++running;
    if (pool.stopped_by_us) ++stopped;
    for (auto n : pool.stops) stops += n;
    wakes += pool.wakes;
  }
  std::string s = std::to_string(pools_.size()) + " pools: " + std::to_string(running) + " running, " +
                  std::to_string(stopped) + " stopped while idle; " + std::to_string(stops) + " stops, " +
                  std::to_string(wakes) + " wakes";
  if (discovery_.running && discovery_.total > 0)
    s += "; discovering (" + std::to_string(discovery_.done) + " of " + std::to_string(discovery_.total) +
         " units read)";
  return s;
}

}  // namespace idlepool::daemon
