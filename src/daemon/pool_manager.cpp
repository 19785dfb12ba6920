#include "pool_manager.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <set>

#include "idlepool/sys/php_fpm_files.h"

namespace idlepool::daemon {
namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

bool is_down(const sys::ServiceUnit& s) { return s.active_state == "inactive" || s.active_state == "failed"; }

std::string seconds_ago(MonoTime now, MonoTime then) {
  return std::to_string(std::chrono::duration_cast<std::chrono::seconds>(now - then).count()) + "s";
}

}  // namespace

PoolPolicy PoolManager::policy_for(const std::string& unit) const {
  PoolPolicy p = config_.policy_for(unit);
  if (runtime_pins_.count(unit)) p.pinned = true;
  return p;
}

PoolManager::PoolManager(DaemonConfig config, Deps deps)
    : config_(std::move(config)),
      deps_(std::move(deps)),
      limiter_(config_.max_stops_per_second, config_.stop_burst) {}

bool PoolManager::manages(const std::string& unit) const {
  if (std::find(config_.units.begin(), config_.units.end(), unit) != config_.units.end()) return true;
  if (!ends_with(unit, ".service")) return false;
  return std::any_of(config_.unit_patterns.begin(), config_.unit_patterns.end(),
                     [&](const std::string& p) { return unit_matches(p, unit); });
}

void PoolManager::discover() {
  std::set<std::string> wanted(config_.units.begin(), config_.units.end());
  if (!config_.unit_patterns.empty()) {
    auto names = deps_.systemd.list_units(config_.unit_patterns);
    if (!names) {
      ++stats_.bus_errors;
      spdlog::warn("cannot list units: {}, keeping the pools known so far", names.error().message);
      return;
    }
    for (const auto& n : *names)
      if (ends_with(n, ".service")) wanted.insert(n);
  }
  auto started = std::chrono::steady_clock::now();
  std::vector<std::string> fresh_units;
  for (const auto& unit : wanted)
    if (!pools_.count(unit)) fresh_units.push_back(unit);
  std::vector<std::string> added;
  defer_registration_ = true;
  // In chunks: each one read from systemd with many calls in flight (services, then the sockets that trigger them),
  // and progress reported between them (systemd's start timeout is extended while a long discovery goes on).
  constexpr size_t kChunk = 50;
  for (size_t first = 0; first < fresh_units.size(); first += kChunk) {
    std::vector<std::string> chunk(
        fresh_units.begin() + static_cast<std::ptrdiff_t>(first),
        fresh_units.begin() + static_cast<std::ptrdiff_t>(std::min(first + kChunk, fresh_units.size())));
    auto services = deps_.systemd.services(chunk);
    stats_.units_read += chunk.size();
    std::vector<std::string> socket_names;
    for (const auto& svc : services)
      if (svc)
        for (const auto& t : svc->triggered_by)
          if (ends_with(t, ".socket")) socket_names.push_back(t);
    std::sort(socket_names.begin(), socket_names.end());
    socket_names.erase(std::unique(socket_names.begin(), socket_names.end()), socket_names.end());
    auto sockets = deps_.systemd.sockets(socket_names);
    SocketsRead read;
    for (size_t i = 0; i < socket_names.size() && i < sockets.size(); ++i)
      read.emplace(socket_names[i], std::move(sockets[i]));
    for (size_t i = 0; i < chunk.size(); ++i) {
      const std::string& unit = chunk[i];
      Pool pool;
      pool.unit = unit;
      pool.watched_since = deps_.now();
      pool.workers_gone_at = pool.watched_since;  // as good as: look for a stall once, stall_timeout from now
      pool.stall_baseline_pending = true;
      if (i >= services.size() || !services[i]) {
        spdlog::error("pool {}: {}, ignoring", unit, i < services.size() ? services[i].error().message : "not read");
        continue;
      }
      load(pool, std::move(*services[i]), &read);
      std::string addresses;
      for (const auto& l : pool.listeners) addresses += (addresses.empty() ? "" : ", ") + l.address.to_string();
      spdlog::info("managing {} ({}; sockets: {})", unit, pool.service.active_state,
                   addresses.empty() ? "none" : addresses);
      if (pool.safety.unsafe) spdlog::warn("{} will never be stopped: {}", unit, *pool.safety.unsafe);
      for (const auto& w : pool.safety.warnings) spdlog::warn("{}: {}", unit, w);
      pools_.emplace(unit, std::move(pool));
      added.push_back(unit);
    }
    size_t done = std::min(first + kChunk, fresh_units.size());
    if (progress_ && done < fresh_units.size() && !progress_(done, fresh_units.size())) {
      spdlog::info("discovery abandoned after {} of {} units", done, fresh_units.size());
      break;
    }
  }
  defer_registration_ = false;
  auto read = std::chrono::steady_clock::now();
  std::vector<Pool*> fresh;
  for (const auto& unit : added) fresh.push_back(&pools_.at(unit));
  register_listeners(fresh);
  if (!added.empty())
    spdlog::info("discovered {} new pools in {:.2f}s ({:.2f}s reading systemd, {:.2f}s registering their sockets)",
                 added.size(), std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count(),
                 std::chrono::duration<double>(read - started).count(),
                 std::chrono::duration<double>(std::chrono::steady_clock::now() - read).count());
  std::vector<std::string> gone;
  for (const auto& [unit, pool] : pools_)
    if (!wanted.count(unit)) gone.push_back(unit);
  for (const auto& unit : gone) {
    spdlog::info("no longer managing {}", unit);
    forget(unit);
  }
  dirty_ = true;
}

void PoolManager::forget(const std::string& unit) {
  auto it = pools_.find(unit);
  if (it == pools_.end()) return;
  unregister_listeners(it->second);
  if (it->second.in_watcher) deps_.processes.remove_pool(unit);
  pools_.erase(it);
}

void PoolManager::load(Pool& pool, sys::ServiceUnit service, SocketsRead* read) {
  pool.service = std::move(service);
  pool.down = is_down(pool.service);
  refresh_sockets(pool, read);
  if (!pool.down) follow_processes(pool);
  assess_safety(pool);
}

void PoolManager::follow_processes(Pool& pool) {
  auto r = deps_.processes.add_pool(pool.unit, pool.service.control_group, static_cast<int32_t>(pool.service.main_pid));
  if (r) {
    pool.in_watcher = true;
  } else {
    spdlog::warn("{}: cannot follow its processes: {}, ignoring", pool.unit, r.error().message);
  }
}

void PoolManager::refresh_sockets(Pool& pool, SocketsRead* read) {
  std::vector<sys::SocketUnit> sockets;
  for (const auto& t : pool.service.triggered_by) {
    if (!ends_with(t, ".socket")) continue;
    auto cached = read ? read->find(t) : SocketsRead::iterator{};
    auto s = read && cached != read->end() ? cached->second : deps_.systemd.socket(t);
    if (!s) {
      ++stats_.bus_errors;
      spdlog::warn("{}: cannot read {}: {}, ignoring", pool.unit, t, s.error().message);
      continue;
    }
    sockets.push_back(std::move(*s));
  }
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
      Pool::Listener l{s.name, *address, std::nullopt};
      for (const auto& old : pool.listeners)
        if (old.socket_unit == l.socket_unit && old.address == l.address) l.id = old.id;
      listeners.push_back(std::move(l));
    }
  }
  // Listeners that are no longer there stop being counted.
  for (const auto& old : pool.listeners) {
    bool kept = std::any_of(listeners.begin(), listeners.end(), [&](const auto& l) { return l.id == old.id; });
    if (old.id && !kept) (void)deps_.probe.remove(*old.id);
  }
  pool.sockets = std::move(sockets);
  pool.listeners = std::move(listeners);
  register_listeners(pool);
}

void PoolManager::register_listeners(Pool& pool) {
  if (defer_registration_) return;  // discover() registers every new pool's listeners at once
  register_listeners(std::vector<Pool*>{&pool});
}

// One probe call for all: the real probe reads the kernel's sockets once for the whole batch.
void PoolManager::register_listeners(const std::vector<Pool*>& pools) {
  std::vector<std::pair<Pool*, Pool::Listener*>> pending;
  std::vector<SocketAddress> addresses;
  for (Pool* pool : pools) {
    for (auto& l : pool->listeners) {
      if (l.id) continue;
      auto s = std::find_if(pool->sockets.begin(), pool->sockets.end(), [&](const auto& x) { return x.name == l.socket_unit; });
      if (s == pool->sockets.end() || !s->listening()) continue;
      pending.emplace_back(pool, &l);
      addresses.push_back(l.address);
    }
  }
  if (pending.empty()) return;
  auto ids = deps_.probe.add_many(addresses);
  for (size_t i = 0; i < pending.size() && i < ids.size(); ++i) {
    auto& [pool, l] = pending[i];
    if (!ids[i]) {
      spdlog::warn("{}: the probe cannot watch {}: {}", pool->unit, l->address.to_string(), ids[i].error().message);
      continue;
    }
    l->id = *ids[i];
  }
}

void PoolManager::unregister_listeners(Pool& pool) {
  for (auto& l : pool.listeners)
    if (l.id) {
      (void)deps_.probe.remove(*l.id);
      l.id.reset();
    }
}

void PoolManager::assess_safety(Pool& pool) {
  pool.safety = {};
  pool.nudge_on_stall = false;
  if (!sys::runs_php_fpm(pool.service.exec_start)) {
    if (pool.service.kill_signal != 3 && pool.service.kill_signal != 15)
      pool.safety.warnings.push_back("stops with signal " + std::to_string(pool.service.kill_signal));
    return;
  }
  StopSafetyInput in;
  in.kill_signal = pool.service.kill_signal;
  for (const auto& l : pool.listeners)
    if (l.address.is_unix() && !l.address.abstract) in.socket_unix_paths.push_back(l.address.path);
  std::string path;
  for (const auto& argv : pool.service.exec_start)
    if (!argv.empty() && argv[0].find("php-fpm") != std::string::npos) path = sys::php_fpm_config_path(argv);
  if (path.empty()) {
    in.fpm_config_problem = "no --fpm-config on its ExecStart and no default for its php-fpm binary";
  } else if (auto cfg = deps_.read_php_fpm(path); cfg) {
    in.fpm = std::move(*cfg);
    pool.nudge_on_stall = std::any_of(in.fpm->pools.begin(), in.fpm->pools.end(),
                                      [](const PhpFpmPoolListen& p) { return p.pm == "ondemand"; });
  } else {
    in.fpm_config_problem = cfg.error().message;
  }
  pool.safety = assess_php_fpm(in);
}

void PoolManager::refresh_service(Pool& pool, Result<sys::ServiceUnit> svc) {
  if (!svc) {
    ++stats_.bus_errors;
    spdlog::warn("{}: cannot read its state: {}, ignoring", pool.unit, svc.error().message);
    return;
  }
  bool was_down = pool.down;
  bool triggers_changed = svc->triggered_by != pool.service.triggered_by;
  bool exec_changed = svc->exec_start != pool.service.exec_start || svc->kill_signal != pool.service.kill_signal;
  pool.service = std::move(*svc);
  pool.down = is_down(pool.service);
  if (triggers_changed) refresh_sockets(pool);
  // Is it still safe to stop? Judged again whenever what it rests on may have changed: its sockets or its unit
  // (a daemon-reload), and every start, when php-fpm reads its configuration anew (an edited listen = takes effect
  // then, and a pool that now listens on its socket unit's own path could never wake after a stop).
  if (triggers_changed || exec_changed || (was_down && !pool.down)) {
    auto before = pool.safety.unsafe;
    assess_safety(pool);
    if (pool.safety.unsafe && pool.safety.unsafe != before)
      spdlog::warn("{} will never be stopped: {}", pool.unit, *pool.safety.unsafe);
    if (!pool.safety.unsafe && before)
      spdlog::info("{} can be stopped again: {}", pool.unit, "its configuration is safe now");
  }
  if (!was_down && pool.down) {
    if (pool.stop_requested) {
      ++pool.stops[static_cast<size_t>(pool.stop_cause)];
      pool.stopped_by_us = true;
      pool.memory_released_bytes += pool.memory_at_stop.value_or(0);
      spdlog::info("{} stopped ({}; {} KiB released)", pool.unit, status::to_string(pool.stop_cause),
                   pool.memory_at_stop.value_or(0) / 1024);
      // The next first use dates its wake.
      for (const auto& l : pool.listeners)
        if (l.id) deps_.probe.rearm(*l.id);
      after_stop(pool);
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
  if (was_down && !pool.down) {
    // Only kept where systemd limits starts (and pruned to its interval in snapshot()): never grows unbounded.
    if (pool.service.start_limit_burst > 0 && pool.service.start_limit_interval.count() > 0)
      pool.starts.push_back(deps_.now());
    if (pool.stopped_by_us) {
      ++pool.wakes;
      pool.waking_since = pool.service.inactive_exit;
      spdlog::info("{} woke up (socket activation)", pool.unit);
    }
    pool.stopped_by_us = false;
    pool.stop_requested = false;
    register_listeners(pool);
  }
  // Its processes are followed from the moment its cgroup has them (the main process is known once it runs).
  if (!pool.down && !pool.in_watcher && pool.service.main_pid != 0) follow_processes(pool);
  dirty_ = true;
}

void PoolManager::after_stop(Pool& pool) {
  for (const auto& l : pool.listeners) {
    if (!l.address.is_unix() || l.address.abstract || deps_.socket_exists(l.address.path)) continue;
    spdlog::error("{}: its socket path {} vanished when it stopped; restarting {} and never stopping {} again",
                  pool.unit, l.address.path, l.socket_unit, pool.unit);
    pool.unsafe_after_stop = "its socket path " + l.address.path + " vanished after a stop";
    if (auto r = deps_.systemd.restart(l.socket_unit); !r) {
      ++stats_.bus_errors;
      spdlog::error("{}: cannot restart {}: {}", pool.unit, l.socket_unit, r.error().message);
    }
  }
}

namespace {

// `u` as the signals of one loop step say it is now.
sys::ServiceUnit patched(sys::ServiceUnit u, const std::vector<sys::UnitChanges>& changes) {
  for (const auto& c : changes) {
    if (c.active_state) u.active_state = *c.active_state;
    if (c.sub_state) u.sub_state = *c.sub_state;
    if (c.active_enter) u.active_enter = *c.active_enter;
    if (c.inactive_exit) u.inactive_exit = *c.inactive_exit;
    if (c.job_pending) u.job_pending = *c.job_pending;
    if (c.main_pid) u.main_pid = *c.main_pid;
  }
  return u;
}

}  // namespace

// What systemd reported since the last loop step, taken in at once. A start or stop sends several signals per unit
// (its Unit and Service interfaces, each state on the way), carrying the new values: those are applied as they are,
// without asking PID 1 anything while it starts the pool. A unit is read only when a signal changed something else
// idlepool uses, or when a pool starts (its cgroup is known only then); all such reads go in one batch. After a
// daemon-reload every pool is read again (its sockets, ExecStart or limits may have changed).
void PoolManager::on_unit_events(const std::vector<sys::UnitEvent>& events) {
  bool rediscover = false, reloaded = false;
  struct Pending {
    bool read = false;
    std::vector<sys::UnitChanges> patches;
  };
  std::vector<std::string> order;
  std::map<std::string, Pending> changed;
  std::set<std::string> socket_reads;
  std::map<std::string, std::vector<sys::UnitChanges>> socket_patches;
  std::vector<const sys::UnitEvent*> jobs;
  for (const auto& e : events) {
    switch (e.kind) {
      case sys::UnitEvent::Kind::kChanged:
        if (pools_.count(e.unit)) {
          if (!changed.count(e.unit)) order.push_back(e.unit);
          auto& p = changed[e.unit];
          if (!e.changes || e.changes->needs_read) {
            p.read = true;
          } else {
            p.patches.push_back(*e.changes);
          }
        } else if (ends_with(e.unit, ".socket")) {
          if (!e.changes || e.changes->needs_read) {
            socket_reads.insert(e.unit);
          } else {
            socket_patches[e.unit].push_back(*e.changes);
          }
        }
        break;
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
  if (reloaded) {
    order.clear();
    for (auto& [unit, pool] : pools_) {
      order.push_back(unit);
      changed[unit].read = true;
    }
  }
  std::vector<std::string> to_read;
  for (const auto& unit : order) {
    Pool& pool = pools_.at(unit);
    auto& p = changed[unit];
    if (!p.read) {
      sys::ServiceUnit now = patched(pool.service, p.patches);
      // A start: its cgroup (and the rest) are read once, as it comes up.
      if (pool.down && !is_down(now)) {
        p.read = true;
      } else {
        refresh_service(pool, std::move(now));
        continue;
      }
    }
    to_read.push_back(unit);
  }
  if (!to_read.empty()) {
    auto read = deps_.systemd.services(to_read);
    stats_.units_read += to_read.size();
    for (size_t i = 0; i < to_read.size() && i < read.size(); ++i) {
      Pool& pool = pools_.at(to_read[i]);
      const auto& patches = changed[to_read[i]].patches;
      if (!read[i] && !patches.empty()) {
        // Unreadable now: what the signals said is still better than what we had.
        ++stats_.bus_errors;
        spdlog::warn("{}: cannot read it: {}; going by systemd's signals", pool.unit, read[i].error().message);
        refresh_service(pool, patched(pool.service, patches));
        continue;
      }
      refresh_service(pool, std::move(read[i]));
    }
  }
  if (reloaded) {
    std::vector<std::string> names;
    for (auto& [unit, pool] : pools_)
      for (const auto& s : pool.sockets) names.push_back(s.name);
    auto read_sockets = deps_.systemd.sockets(names);
    SocketsRead read;
    for (size_t i = 0; i < names.size() && i < read_sockets.size(); ++i)
      read.emplace(names[i], std::move(read_sockets[i]));
    for (auto& [unit, pool] : pools_) refresh_sockets(pool, &read);
    dirty_ = true;
  }
  // Socket units: their own states from the signals, a read when those cannot say. Only when there are any: this
  // runs for every loop step with signals, and a pool's own signals are the common case.
  if (!socket_reads.empty() || !socket_patches.empty()) {
    for (auto& [unit, pool] : pools_) {
      bool read = false, patched_any = false;
      for (auto& sock : pool.sockets) {
        read |= socket_reads.count(sock.name) > 0;
        auto it = socket_patches.find(sock.name);
        if (it == socket_patches.end()) continue;
        for (const auto& c : it->second) {
          if (c.active_state) sock.active_state = *c.active_state;
          if (c.sub_state) sock.sub_state = *c.sub_state;
        }
        patched_any = true;
      }
      if (read) {
        refresh_sockets(pool);
      } else if (patched_any) {
        register_listeners(pool);  // a socket that listens again is counted again
      }
      if (read || patched_any) dirty_ = true;
    }
  }
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

void PoolManager::on_pool_events(const std::vector<PoolEvent>& events) {
  for (const auto& e : events) {
    spdlog::debug("{}: {} (pid {}, {})", e.pool, to_string(e.kind), e.pid, e.status.to_string());
    auto it = pools_.find(e.pool);
    if (it == pools_.end()) continue;
    dirty_ = true;
    if (e.at_ns) it->second.process_event_at = MonoTime{static_cast<int64_t>(e.at_ns)};
    if (e.kind == PoolEvent::Kind::kLastWorkerExited) {
      it->second.workers_gone_at = e.at_ns ? MonoTime{static_cast<int64_t>(e.at_ns)} : deps_.now();
      it->second.stall_baseline_pending = true;
    }
  }
}

PoolSnapshot PoolManager::snapshot(Pool& pool, const std::map<sys::ListenerId, sys::ListenerSnapshot>& counters,
                                   MonoTime now) {
  PoolSnapshot s;
  s.running = pool.service.running();
  s.stop_in_progress = pool.stop_requested || pool.service.active_state == "deactivating";
  s.active_since = pool.service.active_enter;
  s.watched_since = pool.watched_since;
  s.can_wake = !pool.sockets.empty();
  if (pool.sockets.empty()) s.cannot_wake_reason = "no .socket unit triggers it";
  for (const auto& sock : pool.sockets) {
    if (!sock.listening()) {
      s.can_wake = false;
      s.cannot_wake_reason = sock.name + " is " + sock.active_state + "/" + sock.sub_state + ", not listening";
    }
  }
  if (pool.safety.unsafe) s.unsafe_reason = pool.safety.unsafe;
  if (pool.unsafe_after_stop) s.unsafe_reason = pool.unsafe_after_stop;
  for (const auto& l : pool.listeners) {
    if (!l.id) {
      // A socket the probe does not watch could hide work in flight: do not decide blind.
      s.can_wake = false;
      s.cannot_wake_reason = "the probe does not watch " + l.address.to_string();
      continue;
    }
    auto c = counters.find(*l.id);
    if (c == counters.end()) continue;
    if (!c->second.listening) {
      s.can_wake = false;
      s.cannot_wake_reason = "nothing listens on " + l.address.to_string();
    }
    s.active_connections += c->second.active;
    s.queued_connections += c->second.backlog;
    if (c->second.last_activity_ns) {
      MonoTime t{static_cast<int64_t>(c->second.last_activity_ns)};
      if (!s.last_activity || t > *s.last_activity) s.last_activity = t;
    }
  }
  if (auto p = deps_.processes.processes(pool.unit)) s.workers = p->workers;
  // systemd allows StartLimitBurst starts per interval; the next one fails the unit and its socket. A stop is a
  // wake to come: keep one start in hand for everything else.
  const auto& svc = pool.service;
  if (svc.start_limit_burst > 0 && svc.start_limit_interval.count() > 0) {
    std::erase_if(pool.starts, [&](MonoTime t) { return now - t >= svc.start_limit_interval; });
    if (!pool.starts.empty() && pool.starts.size() + 1 >= svc.start_limit_burst) {
      s.start_limit_until = pool.starts.front() + svc.start_limit_interval;
      s.start_limit_reason = std::to_string(pool.starts.size()) + " starts in the last " +
                             std::to_string(std::chrono::duration_cast<std::chrono::seconds>(svc.start_limit_interval).count()) +
                             "s; systemd allows " + std::to_string(svc.start_limit_burst) +
                             " (StartLimitBurst), and a failed wake would fail its socket for good";
    }
  }
  uint64_t accepts = 0;
  for (const auto& l : pool.listeners)
    if (l.id)
      if (auto c = counters.find(*l.id); c != counters.end()) accepts += c->second.accepts;
  if (s.queued_connections == 0 || !s.running) {
    pool.queued_since.reset();
    pool.stall_reported = false;
  } else if (accepts != pool.accepts_seen || !pool.queued_since) {
    // Queued, and the pool took one since the last look (or it is the first look): waiting since now, or since its
    // last worker left if nothing was accepted since.
    bool none_since_gone = pool.workers_gone_at && pool.accepts_when_gone == accepts;
    pool.queued_since = none_since_gone ? *pool.workers_gone_at : now;
    pool.stall_reported = false;
  }
  pool.accepts_seen = accepts;
  s.queued_since = pool.queued_since;
  pool.last_activity = s.last_activity;
  pool.can_wake = s.can_wake;
  return s;
}

void PoolManager::stop(Pool& pool, MonoTime now) {
  std::string idle = seconds_ago(now, pool.last_activity.value_or(std::max(pool.service.active_enter, pool.watched_since)));
  if (config_.dry_run) {
    spdlog::info("dry run: would stop {} (idle for {})", pool.unit, idle);
    pool.decision = never_because(Rule::kDryRun);
    pool.decision.since = pool.last_activity.value_or(std::max(pool.service.active_enter, pool.watched_since));
    return;
  }
  pool.memory_at_stop = deps_.memory(pool.service.control_group);
  if (auto r = deps_.systemd.stop(pool.unit); !r) {
    ++stats_.bus_errors;
    spdlog::warn("cannot stop {}: {}, trying again later", pool.unit, r.error().message);
    pool.decision = wait_because(Rule::kStopFailed, now + std::chrono::seconds(30), r.error().message);
    return;
  }
  spdlog::info("stopping {}: idle for {}, nothing in flight ({})", pool.unit, idle,
               config_.stop_method == StopMethod::kSystemctl ? "systemctl stop --no-block" : "StopUnit over D-Bus");
  pool.stop_requested = true;
  pool.stop_cause = pool.decision.rule == Rule::kOperator ? status::StopCause::kOperator : status::StopCause::kIdle;
}

void PoolManager::repair_stall(Pool& pool, const PoolSnapshot& snap, MonoTime now) {
  auto queued_for = seconds_ago(now, std::max(*snap.queued_since, snap.active_since));
  if (!pool.nudge_on_stall) {
    if (pool.stall_reported) return;
    pool.stall_reported = true;
    ++pool.stalls[static_cast<size_t>(status::StallAction::kReported)];
    spdlog::warn("{}: stalled: {} connection(s) queued for {} with none accepted and no worker to take them", pool.unit,
                 snap.queued_connections, queued_for);
    return;
  }
  // One nudge a stall_timeout: the worker it makes needs a moment to take the queue.
  if (pool.last_nudge && now - *pool.last_nudge < policy_for(pool.unit).stall_timeout) return;
  pool.last_nudge = now;
  bool nudged = false;
  for (const auto& l : pool.listeners) {
    if (!l.id) continue;
    auto c = last_counters_.find(*l.id);
    if (c == last_counters_.end() || c->second.backlog == 0) continue;
    if (auto r = deps_.nudge(l.address); !r) {
      // Said once a stall; it is tried again every stall-timeout.
      if (!pool.stall_reported) spdlog::error("{}: stalled, and the nudge failed: {}", pool.unit, r.error().message);
      continue;
    }
    nudged = true;
    spdlog::warn("{}: stalled: {} connection(s) queued on {} for {} with none accepted and no worker; nudged it with "
                 "one connection (php-fpm's ondemand master forks only on a new connection, php bug #69724)",
                 pool.unit, c->second.backlog, l.address.to_string(), queued_for);
  }
  ++pool.stalls[static_cast<size_t>(nudged ? status::StallAction::kNudged : status::StallAction::kNudgeFailed)];
  pool.stall_reported = true;
}

bool PoolManager::read_counters() {
  auto read = deps_.probe.read();
  if (!read) {
    spdlog::warn("cannot read the probe: {}; stopping nothing, trying again in 5s", read.error().message);
    return false;
  }
  last_counters_.clear();
  for (auto& c : *read) last_counters_[c.id] = c;
  // A socket the probe could not watch yet (it was not listening, or sock_diag failed) is tried again.
  std::vector<Pool*> missing;
  for (auto& [unit, pool] : pools_)
    if (std::any_of(pool.listeners.begin(), pool.listeners.end(), [](const auto& l) { return !l.id; }))
      missing.push_back(&pool);
  register_listeners(missing);
  time_wakes();
  return true;
}

// A woken pool's first accept or request after its start gives its wake latency.
void PoolManager::time_wakes() {
  for (auto& [unit, pool] : pools_) {
    if (!pool.waking_since) continue;
    for (const auto& l : pool.listeners) {
      if (!l.id) continue;
      auto c = last_counters_.find(*l.id);
      if (c == last_counters_.end() || c->second.first_use_ns == 0) continue;
      MonoTime first{static_cast<int64_t>(c->second.first_use_ns)};
      if (first < *pool.waking_since) continue;
      double seconds = std::chrono::duration<double>(first - *pool.waking_since).count();
      pool.wake_latency.observe(seconds);
      spdlog::info("{}: first request {:.3f}s after it was started", unit, seconds);
      pool.waking_since.reset();
      break;
    }
  }
}

void PoolManager::refresh() {
  if (!read_counters()) return;
  for (auto& [unit, pool] : pools_) {
    pool.memory_bytes = pool.down ? std::nullopt : deps_.memory(pool.service.control_group);
    snapshot(pool, last_counters_, deps_.now());
  }
}

std::optional<MonoTime> PoolManager::evaluate() {
  MonoTime now = deps_.now();
  dirty_ = false;
  if (!read_counters()) {
    for (auto& [unit, pool] : pools_) pool.decision = never_because(Rule::kProbeUnreadable);
    return now + std::chrono::seconds(5);
  }
  std::optional<MonoTime> next;
  for (auto& [unit, pool] : pools_) {
    PoolSnapshot snap = snapshot(pool, last_counters_, now);
    Decision d = decide(snap, policy_for(unit), now);
    bool dry_run_done = config_.dry_run && pool.decision.rule == Rule::kDryRun && d.kind == Decision::Kind::kStop;
    if (dry_run_done) continue;  // reported once per idle period
    if (d.kind == Decision::Kind::kStop && !limiter_.try_take(now)) {
      d = wait_because(Rule::kRateLimit, limiter_.next_available(now));
      ++stats_.deferred_rate_limit;
      spdlog::debug("{}: due, deferred by the stop rate limit", unit);
    }
    if (d.rule == Rule::kInFlight && pool.decision.rule != Rule::kInFlight) ++stats_.deferred_in_flight;
    if (d.kind != pool.decision.kind || d.rule != pool.decision.rule)
      spdlog::debug("{}: {} ({})", unit, to_string(d.kind), describe(d, now));
    pool.decision = d;
    if (pool.process_event_at) {
      // How fast a worker's exit turns into a decision (the process connector's timestamp to now).
      spdlog::debug("{}: decided {} {:.1f} ms after its process event", unit, to_string(d.kind),
                    std::chrono::duration<double, std::milli>(now - *pool.process_event_at).count());
      pool.process_event_at.reset();
    }
    if (d.kind == Decision::Kind::kStop) stop(pool, now);
    if (pool.decision.at && (!next || *pool.decision.at < *next)) next = pool.decision.at;
    // Stalls: looked for stall_timeout after the last worker left, again while connections are queued.
    PoolPolicy policy = policy_for(unit);
    if (pool.stall_baseline_pending) {
      pool.stall_baseline_pending = false;
      pool.accepts_when_gone = pool.accepts_seen;
      if (!pool.down) pool.stall_look_at = now + policy.stall_timeout;  // a stopped pool cannot stall
    } else if (pool.stall_look_at && *pool.stall_look_at <= now) {
      pool.stall_look_at.reset();
    }
    StallCheck stall = check_stall(snap, policy, now);
    if (stall.stalled) repair_stall(pool, snap, now);
    std::optional<MonoTime> look = stall.check_at;
    if (stall.stalled) look = pool.last_nudge.value_or(now) + policy.stall_timeout;  // the next nudge, if still stalled
    if (policy.stall_timeout.count() > 0 && pool.stall_look_at && (!look || *pool.stall_look_at < *look))
      look = pool.stall_look_at;
    if (look && (!next || *look < *next)) next = look;
  }
  return next;
}

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
  PoolSnapshot snap = snapshot(pool, last_counters_, now);
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
  if (!pool.stop_requested) return Error{"systemd refused the stop: " + pool.decision.detail, EIO};
  return "stopping " + unit;
}

std::vector<status::Audit> PoolManager::audit() const {
  std::vector<status::Audit> out;
  for (const auto& [unit, pool] : pools_) {
    status::Audit a;
    a.unit = unit;
    if (pool.sockets.empty()) a.problems.push_back("not socket-activated: no .socket unit triggers it, so it could not wake again");
    for (const auto& sock : pool.sockets)
      if (!sock.listening()) a.problems.push_back(sock.name + " is " + sock.active_state + ", not listening");
    for (const auto& l : pool.listeners)
      if (!l.id) a.problems.push_back("the probe does not watch " + l.address.to_string());
    if (pool.safety.unsafe) a.problems.push_back(*pool.safety.unsafe);
    if (pool.unsafe_after_stop) a.problems.push_back(*pool.unsafe_after_stop);
    a.warnings = pool.safety.warnings;
    out.push_back(std::move(a));
  }
  return out;
}

void PoolManager::reconfigure(DaemonConfig config) {
  config_ = std::move(config);
  limiter_.reconfigure(config_.max_stops_per_second, config_.stop_burst);
  for (auto& [unit, pool] : pools_) pool.decision = {};
  discover();
}

std::vector<status::Pool> PoolManager::status() const {
  std::vector<status::Pool> out;
  for (const auto& [unit, pool] : pools_) {
    status::Pool s;
    s.unit = unit;
    s.active_state = pool.service.active_state;
    s.sub_state = pool.service.sub_state;
    s.kind = sys::runs_php_fpm(pool.service.exec_start) ? "php-fpm" : "generic";
    s.running = pool.service.running();
    for (const auto& l : pool.listeners) {
      status::Socket ss;
      ss.unit = l.socket_unit;
      ss.address = l.address.to_string();
      auto sock = std::find_if(pool.sockets.begin(), pool.sockets.end(), [&](const auto& x) { return x.name == l.socket_unit; });
      ss.listening = sock != pool.sockets.end() && sock->listening();
      if (l.id) {
        auto c = last_counters_.find(*l.id);
        if (c != last_counters_.end())
          ss.counters = status::SocketCounters{c->second.accepts, c->second.requests, c->second.active, c->second.backlog};
      }
      s.sockets.push_back(std::move(ss));
    }
    if (auto p = deps_.processes.processes(unit)) s.processes = status::Processes{p->processes, p->workers, p->main_pid};
    s.decision = pool.decision;
    s.policy = policy_for(unit);
    s.can_wake = pool.can_wake;
    s.memory_bytes = pool.memory_bytes;
    s.memory_released_bytes = pool.memory_released_bytes;
    s.wake_latency = pool.wake_latency;
    s.unsafe = pool.unsafe_after_stop ? pool.unsafe_after_stop : pool.safety.unsafe;
    s.warnings = pool.safety.warnings;
    s.stop_requested = pool.stop_requested;
    s.last_activity = pool.last_activity;
    s.stops = pool.stops;
    s.wakes = pool.wakes;
    s.stalls = pool.stalls;
    out.push_back(std::move(s));
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
  return std::to_string(pools_.size()) + " pools: " + std::to_string(running) + " running, " +
         std::to_string(stopped) + " stopped while idle; " + std::to_string(stops) + " stops, " +
         std::to_string(wakes) + " wakes";
}

}  // namespace idlepool::daemon
