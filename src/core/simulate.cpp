#include "idlepool/core/simulate.h"

#include <algorithm>
#include <limits>

namespace idlepool {

SimResult& SimResult::operator+=(const SimResult& o) {
  running += o.running;
  requests += o.requests;
  cold_starts += o.cold_starts;
  cold_requests += o.cold_requests;
  stops += o.stops;
  prewarms += o.prewarms;
  prewarm_hits += o.prewarm_hits;
  return *this;
}

SimResult simulate_pool(const std::vector<MonoTime>& requests, const PoolPolicy& policy, Rhythm& rhythm,
                        MonoTime wake) {
  constexpr MonoTime kNever = MonoTime::max();
  const std::chrono::seconds min = policy.adaptive.min;
  SimResult r;
  bool running = false;
  MonoTime active_since{0};
  MonoTime ready_at{0};  // a cold start serves from here
  std::optional<MonoTime> last_activity;
  std::optional<MonoTime> look;  // the daemon's next evaluation
  size_t next = 0;

  auto stop_at = [&](MonoTime now) {
    running = false;
    r.running += now - active_since;
    ++r.stops;
    rhythm.stopped();
    rhythm.prewarm_ended();
  };
  // One evaluation, as PoolManager::evaluate makes it for this pool.
  auto evaluate = [&](MonoTime now) {
    look.reset();
    if (running) {
      rhythm.observe(now, last_activity, min);
      Window w = rhythm.window(policy, active_since);
      PoolPolicy effective = policy;
      effective.idle_timeout = w.value;
      PoolSnapshot snap;
      snap.running = true;
      snap.active_since = active_since;
      snap.last_activity = last_activity;
      snap.can_wake = true;
      Decision d = decide(snap, effective, now);
      if (d.kind == Decision::Kind::kStop) {
        stop_at(now);
      } else {
        look = d.at;
        if (policy.adaptive.on)
          if (auto l = rhythm.next_look(w.value, min); l && (!look || *l < *look)) look = l;
        return;
      }
    }
    if (auto plan = rhythm.next_prewarm(policy)) {
      if (now < plan->start) {
        look = plan->start;
      } else if (now < plan->hold_until) {
        running = true;
        active_since = now;
        ready_at = now + wake;
        rhythm.prewarm_started(*plan);
        ++r.prewarms;
        look = now;  // it starts: the daemon decides on it
      }
    }
  };

  while (true) {
    MonoTime t_req = next < requests.size() ? requests[next] : kNever;
    MonoTime t_look = look.value_or(kNever);
    if (t_req == kNever && t_look == kNever) break;
    if (t_req <= t_look) {
      MonoTime t = t_req;
      ++r.requests;
      if (!running) {
        running = true;
        active_since = t;
        ready_at = t + wake;
        ++r.cold_starts;
        ++r.cold_requests;
        rhythm.used_again(t, min);
        look = t;  // systemd's signal of the start: the daemon evaluates
      } else {
        if (t < ready_at) ++r.cold_requests;
        if (rhythm.prewarm() && (!last_activity || *last_activity < rhythm.prewarm()->start)) {
          ++r.prewarm_hits;
          rhythm.used_again(t, min);
          rhythm.prewarm_ended();
        }
      }
      last_activity = t;
      ++next;
    } else {
      evaluate(t_look);
    }
  }
  return r;
}

}  // namespace idlepool
