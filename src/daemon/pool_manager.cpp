#include "pool_manager.h"

#include <spdlog/spdlog.h>

#include <algorithm>

namespace idlepool::daemon {
namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

MonoTime mono(uint64_t ns) { return mono_from_ns(ns); }

// `u` with what one signal carried.
void patch(ServiceUnit& u, const sys::UnitChanges& c) {
  if (c.active_state) u.active_state = *c.active_state;
  if (c.sub_state) u.sub_state = *c.sub_state;
  if (c.active_enter) u.active_enter = *c.active_enter;
  if (c.inactive_exit) u.inactive_exit = *c.inactive_exit;
  if (c.job_pending) u.job_pending = *c.job_pending;
  if (c.main_pid) u.main_pid = *c.main_pid;
}

}  // namespace

PoolManager::PoolManager(DaemonConfig config, Deps deps)
    : config_(std::move(config)), deps_(std::move(deps)), limiter_(config_.max_stops_per_second, config_.stop_burst) {}

PoolPolicy PoolManager::policy_for(const std::string& unit) const {
  PoolPolicy p = config_.policy_for(unit);
  if (runtime_pins_.count(unit)) p.pinned = true;
  return p;
}

// ---- a pool's units ----------------------------------------------------------------------------------------------

void PoolManager::set_sockets(Pool& pool, std::vector<SocketUnit> sockets) {
  std::vector<Pool::Listener> listeners;
  for (const auto& s : sockets) {
    for (const auto& [type, text] : s.listen) {
      if (type != "Stream") {
        spdlog::debug("{}: {} listens on {} ({}): only stream sockets are watched", pool.unit, s.name, text, type);
        continue;
      }
      auto address = parse_socket_address(text);
      if (!address) {
        spdlog::warn("{}: {}: {}, ignoring that socket", pool.unit, s.name, address.error().message);
        continue;
      }
      Pool::Listener l{s.name, *address, std::nullopt, {}};
      if (address->is_unix() && !address->abstract) {
        l.canonical_path = deps_.kinds.files().canonical(address->path);
        if (l.canonical_path.empty()) l.canonical_path = address->path;
      }
      for (const auto& old : pool.listeners)
        if (old.socket_unit == l.socket_unit && old.address == l.address) l.id = old.id;
      listeners.push_back(std::move(l));
    }
  }
  // Listeners that are no longer there stop being counted.
  for (const auto& old : pool.listeners) {
    bool kept = std::any_of(listeners.begin(), listeners.end(), [&](const auto& l) { return l.id == old.id; });
    if (old.id && !kept) (void)deps_.probe.remove(*old.id);
    if (auto it = socket_owners_.find(old.canonical_path); it != socket_owners_.end() && it->second == pool.unit)
      socket_owners_.erase(it);
  }
  for (const auto& l : listeners)
    if (!l.canonical_path.empty()) socket_owners_[l.canonical_path] = pool.unit;
  pool.sockets = std::move(sockets);
  pool.listeners = std::move(listeners);
  dirty_ = true;
}

// Reads the socket units of `units` again (their TriggeredBy changed, or after a daemon-reload), then judges them.
void PoolManager::read_sockets_of(const std::vector<std::string>& units) {
  std::set<std::string> names;
  for (const auto& unit : units)
    if (auto it = pools_.find(unit); it != pools_.end())
      for (const auto& t : it->second.service.triggered_by)
        if (ends_with(t, ".socket")) names.insert(t);
  std::vector<std::string> list(names.begin(), names.end());
  deps_.systemd.read_sockets(list, [this, units, list](std::vector<Result<SocketUnit>> sockets) {
    std::map<std::string, Result<SocketUnit>> read;
    for (size_t i = 0; i < list.size() && i < sockets.size(); ++i) read.emplace(list[i], std::move(sockets[i]));
    std::vector<Pool*> changed;
    for (const auto& unit : units) {
      auto it = pools_.find(unit);
      if (it == pools_.end()) continue;
      set_sockets_from(it->second, read);
      changed.push_back(&it->second);
    }
    register_listeners(changed);
    for (Pool* p : changed) assess_safety(*p);
  });
}

// One probe call for all: the real probe reads the kernel's sockets once for the whole batch. A pool's idle window
// starts when its sockets are watched.
void PoolManager::register_listeners(const std::vector<Pool*>& pools) {
  std::vector<std::pair<Pool*, Pool::Listener*>> pending;
  std::vector<SocketAddress> addresses;
  for (Pool* pool : pools) {
    for (auto& l : pool->listeners) {
      if (l.id) continue;
      auto s = std::find_if(pool->sockets.begin(), pool->sockets.end(),
                            [&](const auto& x) { return x.name == l.socket_unit; });
      if (s == pool->sockets.end() || !s->listening()) continue;
      pending.emplace_back(pool, &l);
      addresses.push_back(l.address);
    }
  }
  if (pending.empty()) return;
  auto ids = deps_.probe.add_many(addresses);
  MonoTime now = deps_.now();
  for (size_t i = 0; i < pending.size() && i < ids.size(); ++i) {
    auto& [pool, l] = pending[i];
    if (!ids[i]) {
      spdlog::warn("{}: the probe cannot watch {}: {}", pool->unit, l->address.to_string(), ids[i].error().message);
      continue;
    }
    l->id = *ids[i];
    if (!pool->watched_since) pool->watched_since = now;
  }
  dirty_ = true;
}

void PoolManager::unregister_listeners(Pool& pool) {
  for (auto& l : pool.listeners)
    if (l.id) {
      (void)deps_.probe.remove(*l.id);
      l.id.reset();
    }
}

void PoolManager::assess_safety(Pool& pool) {
  const kinds::ServiceKind& kind = deps_.kinds.of(pool.service);
  pool.kind = std::string(kind.name());
  pool.request_end_bytes = kind.request_end_bytes();
  kinds::AssessInput in;
  in.service = &pool.service;
  in.allow_abrupt_stop = config_.allow_abrupt_stop_for(pool.unit);
  for (const auto& l : pool.listeners)
    if (!l.canonical_path.empty()) in.own_unix_paths.push_back(l.canonical_path);
  in.socket_owners = &socket_owners_;
  auto before = pool.verdict.unsafe;
  pool.verdict = kind.assess(in);
  if (pool.verdict.unsafe && pool.verdict.unsafe != before)
    spdlog::warn("{} will never be stopped: {}", pool.unit, *pool.verdict.unsafe);
  if (!pool.verdict.unsafe && before) spdlog::info("{} can be stopped again: its configuration is safe now", pool.unit);
  for (const auto& w : pool.verdict.warnings) spdlog::debug("{}: {}", pool.unit, w);
  dirty_ = true;
}

// What systemd says of a pool's service now: its state, and what follows from a change of it.
void PoolManager::apply_service(Pool& pool, ServiceUnit svc) {
  bool first = pool.service.name.empty();
  bool was_down = pool.down;
  bool triggers_changed = !first && svc.triggered_by != pool.service.triggered_by;
  bool exec_changed = svc.exec_start != pool.service.exec_start || svc.kill_signal != pool.service.kill_signal;
  pool.service = std::move(svc);
  pool.down = is_down(pool.service);
  pool.start_limit.configure(pool.service.start_limit_burst, pool.service.start_limit_interval);
  if (triggers_changed) read_sockets_of({pool.unit});
  // Is it still safe to stop? Judged again whenever what it rests on may have changed: its unit (a daemon-reload)
  // and every start, when php-fpm reads its configuration anew (an edited listen = takes effect then, and a pool that
  // now listens on its socket unit's own path could never wake after a stop). Sockets: once they are read.
  if (!first && !triggers_changed && (exec_changed || (was_down && !pool.down))) assess_safety(pool);
  if (!first && !was_down && pool.down) on_stopped(pool);
  if (!first && was_down && !pool.down) on_started(pool);
  // Its processes are followed from the moment its cgroup has them (the main process is known once it runs).
  if (!pool.down && !pool.in_watcher && pool.service.main_pid != 0) follow_processes(pool);
  dirty_ = true;
}

void PoolManager::on_stopped(Pool& pool) {
  pool.retry_stop_at.reset();
  pool.visitor_since.reset();
  pool.rhythm.stopped();
  if (pool.rhythm.prewarm()) {
    spdlog::info("{}: pre-warmed, and no request came before it stopped", pool.unit);
    pool.rhythm.prewarm_ended();
  }
  if (pool.stop_requested) {
    pool.count_stop(pool.stop_cause);
    pool.stopped_by_us = true;
    pool.memory_released_bytes += pool.memory_at_stop.value_or(0);
    spdlog::info("{} stopped ({}; {} KiB released)", pool.unit, status::to_string(pool.stop_cause),
                 pool.memory_at_stop.value_or(0) / 1024);
    // The next first use dates its wake.
    for (const auto& l : pool.listeners)
      if (l.id) deps_.probe.rearm(*l.id);
    check_socket_paths(pool);
  } else {
    pool.stopped_by_us = false;
    spdlog::info("{} stopped, not by idlepool ({})", pool.unit, pool.service.active_state);
  }
  pool.stop_requested = false;
  pool.memory_at_stop.reset();
  pool.memory_bytes.reset();
  if (pool.in_watcher) {
    deps_.processes.remove_pool(pool.unit);
    pool.in_watcher = false;
  }
}

void PoolManager::on_started(Pool& pool) {
  pool.start_limit.record(deps_.now());
  if (pool.prewarming) {
    spdlog::info("{} pre-warmed: started before its predicted request", pool.unit);
  } else if (pool.stopped_by_us) {
    ++pool.wakes;
    pool.waking_since = pool.service.inactive_exit;
    pool.visitor_since = pool.service.inactive_exit;
    // A connection started it: the silence since its last request ends there.
    pool.rhythm.woken(pool.service.inactive_exit, policy_for(pool.unit).adaptive.min);
    spdlog::info("{} woke up (socket activation)", pool.unit);
  } else {
    pool.rhythm.began_anew();  // started by someone else: what follows is no silence of its visitors
  }
  pool.prewarming = false;
  pool.stopped_by_us = false;
  pool.stop_requested = false;
  register_listeners({&pool});
}

void PoolManager::follow_processes(Pool& pool) {
  auto r = deps_.processes.add_pool(pool.unit, pool.service.control_group, static_cast<int32_t>(pool.service.main_pid));
  if (r) {
    pool.in_watcher = true;
  } else {
    spdlog::warn("{}: cannot follow its processes: {}, ignoring", pool.unit, r.error().message);
  }
}

// A socket path that vanished with its service can never wake it: the socket unit is restarted (it binds the path
// again) and the pool is never stopped again.
void PoolManager::check_socket_paths(Pool& pool) {
  for (const auto& l : pool.listeners) {
    if (!l.address.is_unix() || l.address.abstract || deps_.socket_exists(l.address.path)) continue;
    spdlog::error("{}: its socket path {} vanished when it stopped; restarting {} and never stopping {} again",
                  pool.unit, l.address.path, l.socket_unit, pool.unit);
    pool.unsafe_after_stop = "its socket path " + l.address.path + " vanished after a stop";
    deps_.systemd.restart(l.socket_unit, [this, unit = pool.unit, socket = l.socket_unit](const Result<void>& r) {
      if (r) return;
      ++stats_.bus_errors;
      spdlog::error("{}: cannot restart {}: {}", unit, socket, r.error().message);
    });
  }
}

// ---- systemd's signals -------------------------------------------------------------------------------------------

// What systemd reported since the last loop step, taken in at once. A start or stop sends several signals per unit
// (its Unit and Service interfaces, each state on the way), carrying the new values: those are applied as they are,
// without asking PID 1 anything while it starts the pool. A unit is read only when a signal changed something else
// idlepool uses, or when a pool starts (its cgroup is known only then); all such reads go in one batch. After a
// daemon-reload every pool is read again (its sockets, ExecStart or limits may have changed).
void PoolManager::on_unit_events(const std::vector<sys::UnitEvent>& events) {
  bool rediscover = false, reloaded = false;
  std::vector<std::string> order;
  std::map<std::string, std::vector<sys::UnitChanges>> patches;
  std::set<std::string> to_read, socket_reads;
  std::map<std::string, std::vector<sys::UnitChanges>> socket_patches;
  std::vector<const sys::UnitEvent*> jobs;
  for (const auto& e : events) {
    switch (e.kind) {
      case sys::UnitEvent::Kind::kChanged: {
        bool is_pool = pools_.count(e.unit) > 0;
        bool read = !e.changes || e.changes->needs_read;
        if (!is_pool && discovery_.reading.count(e.unit)) {
          // Being read by the discovery: kept until the pool is in the model.
          if (e.changes) discovery_.reading[e.unit].push_back(*e.changes);
          if (read) discovery_.reread.insert(e.unit);
          break;
        }
        if (!is_pool && !ends_with(e.unit, ".socket")) break;
        if (is_pool) {
          if (read) to_read.insert(e.unit);
          if (e.changes) patches[e.unit].push_back(*e.changes);
          if (std::find(order.begin(), order.end(), e.unit) == order.end()) order.push_back(e.unit);
        } else if (read) {
          socket_reads.insert(e.unit);
        } else {
          socket_patches[e.unit].push_back(*e.changes);
        }
        break;
      }
      case sys::UnitEvent::Kind::kNew:
        if (!pools_.count(e.unit) && manages(e.unit)) rediscover = true;
        break;
      case sys::UnitEvent::Kind::kReloaded:
        rediscover = reloaded = true;
        break;
      case sys::UnitEvent::Kind::kRemoved:
        if (pools_.count(e.unit)) rediscover = true;
        break;
      case sys::UnitEvent::Kind::kJobDone:
        jobs.push_back(&e);
        break;
    }
  }
  for (const auto& unit : order) {
    Pool& pool = pools_.at(unit);
    ServiceUnit now = pool.service;
    for (const auto& c : patches[unit]) patch(now, c);
    // A start: its cgroup (and the rest) are read once, as it comes up.
    if (pool.down && !is_down(now)) to_read.insert(unit);
    apply_patches(pool, patches[unit]);
  }
  if (reloaded) {
    after_reload();
  } else if (!to_read.empty()) {
    read_services_of({to_read.begin(), to_read.end()});
  }
  if (!socket_reads.empty() || !socket_patches.empty()) apply_socket_events(socket_reads, socket_patches);
  // After the state changes they follow (a stop job's end comes after the unit's last change).
  for (const auto* e : jobs) {
    auto it = pools_.find(e->unit);
    if (it != pools_.end() && it->second.stop_requested && e->job_result != "done") {
      spdlog::warn("stopping {} ended with '{}'", e->unit, e->job_result);
      it->second.stop_requested = false;
      dirty_ = true;
    }
  }
  if (rediscover) discover();
}

// The values the signals carried, applied as they are; remembered while a read of the unit is in flight, since they
// are newer than what that read will say.
void PoolManager::apply_patches(Pool& pool, const std::vector<sys::UnitChanges>& patches) {
  if (patches.empty()) return;
  if (pool.reads_in_flight > 0)
    pool.patches_during_read.insert(pool.patches_during_read.end(), patches.begin(), patches.end());
  ServiceUnit now = pool.service;
  for (const auto& c : patches) patch(now, c);
  // A start waits for its read (the cgroup); everything else is taken at once.
  if (pool.down && !is_down(now)) return;
  apply_service(pool, std::move(now));
}

void PoolManager::read_services_of(const std::vector<std::string>& units) {
  for (const auto& unit : units) ++pools_.at(unit).reads_in_flight;
  stats_.units_read += units.size();
  deps_.systemd.read_services(units, [this, units](std::vector<Result<ServiceUnit>> read) {
    for (size_t i = 0; i < units.size() && i < read.size(); ++i) {
      auto it = pools_.find(units[i]);
      if (it == pools_.end()) continue;
      Pool& pool = it->second;
      --pool.reads_in_flight;
      ServiceUnit svc;
      if (read[i]) {
        svc = std::move(*read[i]);
      } else {
        ++stats_.bus_errors;
        spdlog::warn("{}: cannot read it: {}; going by systemd's signals", pool.unit, read[i].error().message);
        svc = pool.service;
      }
      for (const auto& c : pool.patches_during_read) patch(svc, c);
      if (pool.reads_in_flight == 0) pool.patches_during_read.clear();
      apply_service(pool, std::move(svc));
    }
  });
}

// After a daemon-reload every pool is read again, its sockets too (changed ExecStart, sockets or limits of a known
// pool would otherwise go unnoticed).
void PoolManager::after_reload() {
  std::vector<std::string> units;
  for (const auto& [unit, pool] : pools_) units.push_back(unit);
  if (units.empty()) return;
  read_services_of(units);
  read_sockets_of(units);
}

// Socket units: their own states from the signals, a read when those cannot say.
void PoolManager::apply_socket_events(const std::set<std::string>& reads,
                                      const std::map<std::string, std::vector<sys::UnitChanges>>& patches) {
  std::vector<std::string> to_read;
  std::vector<Pool*> patched;
  for (auto& [unit, pool] : pools_) {
    bool read = false, changed = false;
    for (auto& sock : pool.sockets) {
      read |= reads.count(sock.name) > 0;
      auto it = patches.find(sock.name);
      if (it == patches.end()) continue;
      for (const auto& c : it->second) {
        if (c.active_state) sock.active_state = *c.active_state;
        if (c.sub_state) sock.sub_state = *c.sub_state;
      }
      changed = true;
    }
    if (read) to_read.push_back(unit);
    if (changed && !read) patched.push_back(&pool);
  }
  register_listeners(patched);  // a socket that listens again is counted again
  if (!to_read.empty()) read_sockets_of(to_read);
  dirty_ = true;
}

void PoolManager::on_pool_events(const std::vector<PoolEvent>& events) {
  for (const auto& e : events) {
    spdlog::debug("{}: {} (pid {}, {})", e.pool, to_string(e.kind), e.pid, e.status.to_string());
    auto it = pools_.find(e.pool);
    if (it == pools_.end()) continue;
    dirty_ = true;
    if (e.at_ns) it->second.process_event_at = mono(e.at_ns);
    if (e.kind == PoolEvent::Kind::kLastWorkerExited)
      it->second.stall.worker_gone(e.at_ns ? mono(e.at_ns) : deps_.now());
  }
}

// ---- deciding and acting ------------------------------------------------------------------------------------------

// The policy's view of a pool at `now`, from what the daemon knows and the probe's last reading. Read-only.
PoolSnapshot PoolManager::snapshot(const Pool& pool, MonoTime now) const {
  PoolSnapshot s;
  s.running = pool.service.running();
  s.stop_in_progress = pool.stop_requested || pool.service.active_state == "deactivating";
  s.active_since = pool.service.active_enter;
  s.watched_since = pool.watched_since.value_or(now);
  s.can_wake = !pool.sockets.empty();
  if (pool.sockets.empty()) s.cannot_wake_reason = "no .socket unit triggers it";
  for (const auto& sock : pool.sockets) {
    if (!sock.listening()) {
      s.can_wake = false;
      s.cannot_wake_reason = sock.name + " is " + sock.active_state + "/" + sock.sub_state + ", not listening";
    }
  }
  if (pool.verdict.unsafe) s.unsafe_reason = pool.verdict.unsafe;
  if (pool.unsafe_after_stop) s.unsafe_reason = pool.unsafe_after_stop;
  for (const auto& l : pool.listeners) {
    if (!l.id) {
      // A socket the probe does not watch could hide work in flight: do not decide blind.
      s.can_wake = false;
      s.cannot_wake_reason = "the probe does not watch " + l.address.to_string();
      continue;
    }
    auto c = last_counters_.find(*l.id);
    if (c == last_counters_.end()) continue;
    if (!c->second.listening) {
      s.can_wake = false;
      s.cannot_wake_reason = "nothing listens on " + l.address.to_string();
    }
    auto idle = static_cast<uint32_t>(pool.idle_connections(c->second).size());
    s.active_connections += c->second.active - std::min(idle, c->second.active);
    s.queued_connections += c->second.backlog;
    s.idle_connections += idle;
    if (c->second.last_activity_ns) {
      MonoTime t = mono(c->second.last_activity_ns);
      if (!s.last_activity || t > *s.last_activity) s.last_activity = t;
    }
  }
  if (auto p = deps_.processes.processes(pool.unit)) s.workers = p->workers;
  if (auto block = pool.start_limit.blocks(now)) {
    s.start_limit_until = block->until;
    s.start_limit_reason = block->reason;
  }
  s.queued_since = pool.stall.queued_since();
  return s;
}

uint64_t PoolManager::accepts_of(const Pool& pool) const {
  uint64_t accepts = 0;
  for (const auto& l : pool.listeners)
    if (l.id)
      if (auto c = last_counters_.find(*l.id); c != last_counters_.end()) accepts += c->second.accepts;
  return accepts;
}

bool PoolManager::read_counters() {
  auto read = deps_.probe.read();
  if (!read) {
    spdlog::warn("cannot read the probe: {}; stopping nothing, trying again in 5s", read.error().message);
    return false;
  }
  last_counters_.clear();
  for (auto& c : *read) last_counters_[c.id] = c;
  return true;
}

// A woken pool's first accept or request after its start gives its wake latency; a pre-warmed pool's, its hit.
void PoolManager::time_wakes() {
  for (auto& [unit, pool] : pools_) {
    if (const auto& plan = pool.rhythm.prewarm(); plan && !pool.down) {
      for (const auto& l : pool.listeners) {
        auto c = l.id ? last_counters_.find(*l.id) : last_counters_.end();
        if (c == last_counters_.end() || c->second.first_use_ns == 0 || mono(c->second.first_use_ns) < plan->start)
          continue;
        MonoTime first = mono(c->second.first_use_ns);
        ++pool.prewarm_hits;
        spdlog::info("{}: pre-warm hit: its first request came {:.1f}s after the pre-warm began", unit,
                     to_seconds(first - plan->start));
        pool.rhythm.used_again(first, policy_for(unit).adaptive.min);
        pool.rhythm.prewarm_ended();
        dirty_ = true;
        break;
      }
    }
    time_visitor_wake(pool);
    if (!pool.waking_since) continue;
    for (const auto& l : pool.listeners) {
      if (!l.id) continue;
      auto c = last_counters_.find(*l.id);
      if (c == last_counters_.end() || c->second.first_use_ns == 0) continue;
      MonoTime first = mono(c->second.first_use_ns);
      if (first < *pool.waking_since) continue;
      double seconds = to_seconds(first - *pool.waking_since);
      pool.wake_latency.observe(seconds);
      spdlog::info("{}: first request {:.3f}s after it was started", unit, seconds);
      pool.waking_since.reset();
      break;
    }
  }
}

// A woken pool's first response: its visitor waited from the connection's arrival at the stopped pool's socket (the
// probe's first arrival since the stop; systemd's start of it if that is earlier) until then.
void PoolManager::time_visitor_wake(Pool& pool) {
  if (!pool.visitor_since) return;
  for (const auto& l : pool.listeners) {
    auto c = l.id ? last_counters_.find(*l.id) : last_counters_.end();
    if (c == last_counters_.end() || c->second.first_response_ns == 0) continue;
    MonoTime response = mono(c->second.first_response_ns);
    MonoTime arrived = *pool.visitor_since;
    if (c->second.first_arrival_ns != 0) arrived = std::min(arrived, mono(c->second.first_arrival_ns));
    if (response < arrived) continue;
    double seconds = to_seconds(response - arrived);
    pool.visitor_wake.observe(seconds);
    pool.slowest_visitor_wake.observe(response, seconds);
    spdlog::info("{}: its waking visitor was answered {:.3f}s after the connection arrived", pool.unit, seconds);
    pool.visitor_since.reset();
    dirty_ = true;
    return;
  }
}

void PoolManager::refresh() {
  if (!read_counters()) return;
  // A wake's latency is a fact the kernel already dated (its first use): recording it moves no decision.
  time_wakes();
  for (auto& [unit, pool] : pools_)
    pool.memory_bytes = pool.down ? std::nullopt : deps_.memory(pool.service.control_group);
}

std::optional<MonoTime> PoolManager::evaluate() {
  MonoTime now = deps_.now();
  dirty_ = false;
  if (!read_counters()) {
    for (auto& [unit, pool] : pools_) pool.decision = never_because(Rule::kProbeUnreadable, "see the log");
    return now + std::chrono::seconds(5);
  }
  // A socket the probe could not watch yet (it was not listening, or sock_diag failed) is tried again.
  std::vector<Pool*> missing;
  for (auto& [unit, pool] : pools_)
    if (std::any_of(pool.listeners.begin(), pool.listeners.end(), [](const auto& l) { return !l.id; }))
      missing.push_back(&pool);
  register_listeners(missing);
  time_wakes();
  std::optional<MonoTime> next;
  auto sooner = [&next](std::optional<MonoTime> t) {
    if (t && (!next || *t < *next)) next = t;
  };
  for (auto& [unit, pool] : pools_) {
    PoolSnapshot snap = observe(pool, now);
    Decision d = decide_one(pool, snap, now);
    sooner(d.at);
    sooner(after_decision(pool, snap, now));
    sooner(follow_rhythm(pool, snap, now));
  }
  return next;
}

// The snapshot an evaluation decides on; the evaluation's readings move the stall bookkeeping (only here).
PoolSnapshot PoolManager::observe(Pool& pool, MonoTime now) {
  PoolSnapshot snap = snapshot(pool, now);
  pool.stall.observe(accepts_of(pool), snap.queued_connections, snap.running, now);
  snap.queued_since = pool.stall.queued_since();
  pool.last_activity = snap.last_activity;
  pool.can_wake = snap.can_wake;
  return snap;
}

Decision PoolManager::decide_one(Pool& pool, const PoolSnapshot& snap, MonoTime now) {
  PoolPolicy policy = policy_for(pool.unit);
  // idle-timeout = adaptive: the window its rhythm calls for now (the fixed timeout otherwise).
  if (policy.adaptive.on && snap.running) pool.rhythm.observe(now, snap.last_activity, policy.adaptive.min);
  pool.window = pool.rhythm.window(policy, snap.active_since);
  policy.idle_timeout = pool.window.value;
  Decision d = decide(snap, policy, now);
  if (config_.dry_run && pool.decision.rule == Rule::kDryRun && d.kind == Decision::Kind::kStop)
    return pool.decision;  // reported once per idle period
  if (d.kind == Decision::Kind::kStop && pool.retry_stop_at && now < *pool.retry_stop_at)
    d = wait_because(Rule::kStopFailed, *pool.retry_stop_at, pool.stop_error);
  if (d.kind == Decision::Kind::kStop && !limiter_.try_take(now)) {
    d = wait_because(Rule::kRateLimit, limiter_.next_available(now));
    ++stats_.deferred_rate_limit;
    spdlog::debug("{}: due, deferred by the stop rate limit", pool.unit);
  }
  // The in-flight reading of this evaluation may be some stops old: the pool's own is taken again right before.
  if (d.kind == Decision::Kind::kStop) d = recheck_before_stop(pool, policy, now).value_or(d);
  if (d.rule == Rule::kInFlight && pool.decision.rule != Rule::kInFlight) ++stats_.deferred_in_flight;
  if (d.kind != pool.decision.kind || d.rule != pool.decision.rule)
    spdlog::debug("{}: {} ({})", pool.unit, to_string(d.kind), describe(d, now));
  if (pool.process_event_at) {
    // How fast a worker's exit turns into a decision (the process connector's timestamp to now).
    spdlog::debug("{}: decided {} {:.1f} ms after its process event", pool.unit, to_string(d.kind),
                  std::chrono::duration<double, std::milli>(now - *pool.process_event_at).count());
    pool.process_event_at.reset();
  }
  pool.decision = d;
  if (d.kind == Decision::Kind::kStop) stop(pool, now);
  return pool.decision;
}

// Reads the probe once more for a pool about to be stopped; a decision other than a stop if that reading forbids it.
std::optional<Decision> PoolManager::recheck_before_stop(Pool& pool, const PoolPolicy& policy, MonoTime now) {
  if (!read_counters()) return never_because(Rule::kProbeUnreadable, "see the log");
  PoolSnapshot fresh = snapshot(pool, now);
  Decision d = decide(fresh, policy, now);
  if (d.kind != Decision::Kind::kStop) return d;
  if (fresh.idle_connections == 0) return std::nullopt;
  // Stopping through kept-alive connections (keepalive-connections = close): each must be one a worker waits on for
  // the client's next request. One that is not is taken for a request in flight (a response that paused, say).
  std::vector<uint32_t> inodes = idle_inodes_of(pool);
  size_t waiting = deps_.waiting_readers ? deps_.waiting_readers(pool.service.control_group, inodes) : 0;
  if (waiting >= inodes.size()) return std::nullopt;
  Decision in_flight =
      wait_because(Rule::kInFlight, now + std::min<std::chrono::seconds>(policy.idle_timeout, kInFlightRecheck));
  in_flight.active = fresh.active_connections + static_cast<uint32_t>(inodes.size() - waiting);
  in_flight.queued = fresh.queued_connections;
  in_flight.idle = static_cast<uint32_t>(waiting);
  spdlog::debug("{}: {} of {} seemingly idle connections have no worker waiting on them: not stopped", pool.unit,
                inodes.size() - waiting, inodes.size());
  return in_flight;
}

std::vector<uint32_t> PoolManager::idle_inodes_of(const Pool& pool) const {
  std::vector<uint32_t> inodes;
  for (const auto& l : pool.listeners)
    if (l.id)
      if (auto c = last_counters_.find(*l.id); c != last_counters_.end()) {
        auto idle = pool.idle_connections(c->second);
        inodes.insert(inodes.end(), idle.begin(), idle.end());
      }
  return inodes;
}

std::optional<MonoTime> PoolManager::after_decision(Pool& pool, const PoolSnapshot& snap, MonoTime now) {
  PoolPolicy policy = policy_for(pool.unit);
  pool.stall.settle(!pool.down, policy, now);
  StallCheck stall = check_stall(snap, policy, now);
  if (stall.stalled) repair_stall(pool, snap, now);
  return pool.stall.next_look(stall, policy, now);
}

void PoolManager::stop(Pool& pool, MonoTime now) {
  MonoTime idle_from =
      pool.last_activity.value_or(std::max(pool.service.active_enter, pool.watched_since.value_or(now)));
  std::string idle = whole_seconds(now - idle_from);
  if (config_.dry_run) {
    spdlog::info("dry run: would stop {} (idle for {})", pool.unit, idle);
    pool.decision = never_because(Rule::kDryRun);
    pool.decision.since = idle_from;
    return;
  }
  // keepalive-connections = close: the connections its workers wait on are shut down first, so that they go back to
  // accept() and exit at once (a worker waiting on one would hold the stop for process_control_timeout). One that
  // got a request meanwhile is left alone, and the pool is not stopped.
  if (auto inodes = idle_inodes_of(pool); !inodes.empty()) {
    size_t closed = deps_.close_kept_alive ? deps_.close_kept_alive(pool.service.control_group, inodes) : 0;
    spdlog::info("{}: closed {} of {} idle kept-alive connection(s) for its stop", pool.unit, closed, inodes.size());
    if (closed < inodes.size()) {
      pool.decision = wait_because(Rule::kInFlight, now + kInFlightRecheck);
      pool.decision.active = static_cast<uint32_t>(inodes.size() - closed);
      spdlog::info(
          "{}: not stopped: a kept-alive connection was not shut down (a request came on it, or idlepoold "
          "may not: see keepalive-connections)",
          pool.unit);
      return;
    }
  }
  pool.memory_at_stop = deps_.memory(pool.service.control_group);
  pool.stop_requested = true;
  pool.stop_cause = pool.decision.rule == Rule::kOperator ? status::StopCause::kOperator : status::StopCause::kIdle;
  spdlog::info("stopping {}: idle for {}, nothing in flight ({})", pool.unit, idle,
               config_.stop_method == StopMethod::kSystemctl ? "systemctl stop --no-block" : "StopUnit over D-Bus");
  deps_.systemd.stop(pool.unit, [this, unit = pool.unit](const Result<void>& r) {
    if (r) return;
    auto it = pools_.find(unit);
    if (it == pools_.end()) return;
    ++stats_.bus_errors;
    spdlog::warn("cannot stop {}: {}, trying again later", unit, r.error().message);
    Pool& p = it->second;
    p.stop_requested = false;
    p.retry_stop_at = deps_.now() + std::chrono::seconds(30);
    p.stop_error = r.error().message;
    p.decision = wait_because(Rule::kStopFailed, *p.retry_stop_at, p.stop_error);
    dirty_ = true;
  });
}

std::optional<MonoTime> PoolManager::follow_rhythm(Pool& pool, const PoolSnapshot& snap, MonoTime now) {
  const PoolPolicy policy = policy_for(pool.unit);
  if (!policy.adaptive.on) return std::nullopt;
  if (snap.running) return pool.rhythm.next_look(pool.window.value, policy.adaptive.min);
  // A pre-warm asked for whose start was not seen (systemd refused the job, or the start failed): given up when its
  // hold ends and no start is under way, so that it holds no max-prewarming slot for good.
  if (const auto& asked = pool.rhythm.prewarm()) {
    if (now < asked->hold_until) return asked->hold_until;
    if (!pool.prewarming) return std::nullopt;  // it started, and is stopping now: its stop ends the pre-warm
    // Its start under way (a slow one): the request meets it as it comes up, and that is still the pre-warm's.
    if (pool.service.active_state == "activating" || (pool.service.job_pending && pool.prewarming))
      return now + kInFlightRecheck;
    spdlog::warn("{}: pre-warmed, and it did not start before the hold ended", pool.unit);
    pool.rhythm.prewarm_ended();
    pool.prewarming = false;
    pool.window = pool.rhythm.window(policy, snap.active_since);
    return std::nullopt;
  }
  // Pre-warms: only of a pool idlepool stopped (one stopped by hand stays stopped until a visitor comes).
  if (!pool.down || !pool.stopped_by_us || pool.stop_requested || pool.prewarming || config_.dry_run)
    return std::nullopt;
  auto plan = pool.rhythm.next_prewarm(policy);
  if (!plan || now >= plan->hold_until) return std::nullopt;
  if (now < plan->start) return plan->start;
  size_t prewarming = 0;
  for (const auto& [unit, p] : pools_) prewarming += p.rhythm.prewarm() ? 1 : 0;
  if (prewarming >= config_.max_prewarming) {
    spdlog::debug("{}: a pre-warm is due; {} pools are pre-warmed already (max-prewarming)", pool.unit, prewarming);
    return std::min(plan->hold_until, now + kInFlightRecheck);
  }
  prewarm(pool, *plan);
  pool.window = pool.rhythm.window(policy, snap.active_since);
  return plan->hold_until;  // given up then if its start is never seen
}

void PoolManager::prewarm(Pool& pool, const PrewarmPlan& plan) {
  pool.prewarming = true;
  pool.rhythm.prewarm_started(plan);
  ++pool.prewarms;
  spdlog::info("{}: pre-warming: its next request is expected within {:.0f}s (held up until then)", pool.unit,
               to_seconds(plan.hold_until - deps_.now()));
  deps_.systemd.start(pool.unit, [this, unit = pool.unit](const Result<void>& r) {
    if (r) return;
    ++stats_.bus_errors;
    spdlog::warn("{}: cannot pre-warm it: {}", unit, r.error().message);
    if (auto it = pools_.find(unit); it != pools_.end()) {
      it->second.prewarming = false;
      it->second.rhythm.prewarm_ended();
    }
  });
}

std::map<std::string, wire::LearntRhythm> PoolManager::learnt() const {
  std::map<std::string, wire::LearntRhythm> out = restored_;  // those not found this time are kept for later
  for (const auto& [unit, pool] : pools_)
    if (pool.rhythm.histogram.total() > 0 || pool.rhythm.recent.count > 0)
      out[unit] = wire::LearntRhythm{pool.rhythm.histogram, pool.rhythm.recent};
  return out;
}

void PoolManager::restore(std::map<std::string, wire::LearntRhythm> learnt) {
  for (auto it = learnt.begin(); it != learnt.end();) {
    auto p = pools_.find(it->first);
    if (p == pools_.end()) {
      ++it;
      continue;
    }
    p->second.rhythm.histogram = it->second.silences;
    p->second.rhythm.recent = it->second.recent;
    it = learnt.erase(it);
  }
  restored_ = std::move(learnt);
}

void PoolManager::repair_stall(Pool& pool, const PoolSnapshot& snap, MonoTime now) {
  auto queued_for = whole_seconds(now - std::max(*snap.queued_since, snap.active_since));
  if (!pool.verdict.nudge_on_stall) {
    if (pool.stall.reported()) return;
    pool.stall.set_reported();
    pool.count_stall(status::StallAction::kReported);
    spdlog::warn("{}: stalled: {} connection(s) queued for {} with none accepted and no worker to take them", pool.unit,
                 snap.queued_connections, queued_for);
    return;
  }
  // One nudge a stall_timeout: the worker it makes needs a moment to take the queue.
  if (!pool.stall.nudge_due(policy_for(pool.unit), now)) return;
  pool.stall.nudged(now);
  bool nudged = false;
  for (const auto& l : pool.listeners) {
    if (!l.id) continue;
    auto c = last_counters_.find(*l.id);
    if (c == last_counters_.end() || c->second.backlog == 0) continue;
    if (auto r = deps_.nudge(l.address, c->second.unix_file); !r) {
      // Said once a stall; it is tried again every stall-timeout.
      if (!pool.stall.reported()) spdlog::error("{}: stalled, and the nudge failed: {}", pool.unit, r.error().message);
      continue;
    }
    nudged = true;
    spdlog::warn(
        "{}: stalled: {} connection(s) queued on {} for {} with none accepted and no worker; nudged it with "
        "one connection (php-fpm's ondemand master forks only on a new connection, php bug #69724)",
        pool.unit, c->second.backlog, l.address.to_string(), queued_for);
  }
  pool.count_stall(nudged ? status::StallAction::kNudged : status::StallAction::kNudgeFailed);
  pool.stall.set_reported();
}

// ---- idlepoolctl -------------------------------------------------------------------------------------------------

Result<void> PoolManager::pin(const std::string& unit, bool on) {
  if (!pools_.count(unit)) return Error{"no pool named " + unit, ENOENT};
  if (on) {
    runtime_pins_.insert(unit);
  } else {
    runtime_pins_.erase(unit);
  }
  dirty_ = true;
  spdlog::info("{} {} by idlepoolctl", unit, on ? "pinned" : "unpinned");
  return {};
}

Result<std::string> PoolManager::stop_now(const std::string& unit) {
  auto it = pools_.find(unit);
  if (it == pools_.end()) return Error{"no pool named " + unit, ENOENT};
  Pool& pool = it->second;
  MonoTime now = deps_.now();
  if (!read_counters()) return Error{"cannot read the probe, so in-flight work cannot be ruled out", EAGAIN};
  PoolSnapshot snap = snapshot(pool, now);
  // Every rule but the waiting ones: the operator asks for now.
  PoolPolicy immediate = policy_for(unit);
  immediate.idle_timeout = std::chrono::seconds(0);
  immediate.min_uptime = std::chrono::seconds(0);
  snap.watched_since = MonoTime{0};
  Decision d = decide(snap, immediate, now);
  if (d.kind != Decision::Kind::kStop) return Error{"refused: " + describe(d, now), EPERM};
  pool.decision = stop_because(Rule::kOperator);
  stop(pool, now);
  if (config_.dry_run) return std::string("dry run: would stop ") + unit;
  return "stopping " + unit;
}

void PoolManager::reconfigure(DaemonConfig config) {
  config_ = std::move(config);
  limiter_.reconfigure(config_.max_stops_per_second, config_.stop_burst);
  for (auto& [unit, pool] : pools_) {
    pool.decision = {};
    assess_safety(pool);  // allow-abrupt-stop may have changed
  }
  discover();
}

}  // namespace idlepool::daemon
