// The pool manager driven by fakes of systemd, the probe and the process watcher, with a settable clock: discovery,
// stopping, counting stops and wakes, the rate limit, dry runs, unsafe pools, vanished socket paths, stalls. The real
// systemd, probe and php-fpm are exercised by tests/e2e.
#include "pool_manager.h"

#include <gtest/gtest.h>

#include <map>
#include <set>

namespace idlepool::daemon {
namespace {

using namespace std::chrono_literals;

// systemd as the manager sees it, answering later as the real one does: every answer waits in `pending` until the
// test pumps (never within the call that asked).
class FakeSystemd final : public sys::ServiceManager {
 public:
  std::map<std::string, ServiceUnit> service_units;
  std::map<std::string, SocketUnit> sockets;
  std::vector<std::string> stopped, restarted, started;
  std::vector<sys::UnitEvent> events;
  std::vector<std::function<void()>> pending;
  std::optional<std::string> stop_error;  // systemd refuses stops with this

  // A running php-fpm pool behind NAME.socket listening on ADDRESS.
  void add_pool(const std::string& name, const std::string& address, MonoTime since) {
    ServiceUnit s;
    s.name = name + ".service";
    s.load_state = "loaded";
    s.active_state = "active";
    s.sub_state = "running";
    s.main_pid = 100;
    s.control_group = "/system.slice/" + s.name;
    s.triggered_by = {name + ".socket"};
    s.active_enter = since;
    s.exec_start = {{"/usr/sbin/php-fpm8.2", "--nodaemonize", "--fpm-config", "/etc/php/" + name + ".conf"}};
    s.kill_signal = 3;
    service_units[s.name] = s;
    SocketUnit k;
    k.name = name + ".socket";
    k.active_state = "active";
    k.sub_state = "running";
    k.listen = {{"Stream", address}};
    k.triggers = {s.name};
    sockets[k.name] = k;
  }
  int socket_reads = 0;
  // A state change as systemd signals it: the new values ride along with the signal.
  void signal_state(const std::string& unit, const std::string& active, const std::string& sub) {
    sys::UnitChanges c;
    c.active_state = active;
    c.sub_state = sub;
    if (auto it = service_units.find(unit); it != service_units.end()) {
      it->second.active_state = active;
      it->second.sub_state = sub;
    } else if (auto s = sockets.find(unit); s != sockets.end()) {
      s->second.active_state = active;
      s->second.sub_state = sub;
    }
    events.push_back({sys::UnitEvent::Kind::kChanged, unit, {}, c});
  }
  void set_state(const std::string& unit, const std::string& active, const std::string& sub) {
    service_units[unit].active_state = active;
    service_units[unit].sub_state = sub;
    events.push_back({sys::UnitEvent::Kind::kChanged, unit, {}});
  }
  // Answers everything asked so far, and what those answers ask in turn.
  int pump() {
    int n = 0;
    while (!pending.empty()) {
      auto now = std::exchange(pending, {});
      for (auto& f : now) f();
      n += static_cast<int>(now.size());
    }
    return n;
  }
  // Answers only what was asked so far (one round).
  void pump_once() {
    auto now = std::exchange(pending, {});
    for (auto& f : now) f();
  }

  void list_units(std::vector<std::string> patterns, sys::Done<Result<std::vector<std::string>>> done) override {
    std::vector<std::string> out;
    for (const auto& [name, s] : service_units)
      for (const auto& p : patterns)
        if (unit_matches(p, name)) out.push_back(name);
    pending.push_back([out, done = std::move(done)] { done(out); });
  }
  int service_reads = 0;
  int batches = 0;
  void read_services(std::vector<std::string> names, sys::Done<std::vector<Result<ServiceUnit>>> done) override {
    ++batches;
    std::vector<Result<ServiceUnit>> out;
    for (const auto& n : names) {
      ++service_reads;
      auto it = service_units.find(n);
      if (it == service_units.end()) {
        out.push_back(Error{"unit " + n + " is not-found, not loaded", ENOENT});
      } else {
        out.push_back(it->second);
      }
    }
    pending.push_back([out = std::move(out), done = std::move(done)]() mutable { done(std::move(out)); });
  }
  void read_sockets(std::vector<std::string> names, sys::Done<std::vector<Result<SocketUnit>>> done) override {
    std::vector<Result<SocketUnit>> out;
    for (const auto& n : names) {
      ++socket_reads;
      auto it = sockets.find(n);
      if (it == sockets.end()) {
        out.push_back(Error{"unit " + n + " is not-found, not loaded", ENOENT});
      } else {
        out.push_back(it->second);
      }
    }
    pending.push_back([out = std::move(out), done = std::move(done)]() mutable { done(std::move(out)); });
  }
  void stop(const std::string& name, sys::Done<Result<void>> done) override {
    stopped.push_back(name);
    Result<void> r = stop_error ? Result<void>(Error{*stop_error, EIO}) : Result<void>();
    pending.push_back([r, done = std::move(done)] { done(r); });
  }
  void restart(const std::string& name, sys::Done<Result<void>> done) override {
    restarted.push_back(name);
    pending.push_back([done = std::move(done)] { done(Result<void>()); });
  }
  void start(const std::string& name, sys::Done<Result<void>> done) override {
    started.push_back(name);
    pending.push_back([done = std::move(done)] { done(Result<void>()); });
  }
  std::vector<sys::UnitEvent> take_events() override { return std::exchange(events, {}); }
};

// php-fpm configurations made from what each test says its pools listen on.
class FpmFiles final : public sys::FileReader {
 public:
  std::map<std::string, std::string> listen;  // config path -> listen
  std::string pm = "dynamic";
  std::string process_control_timeout = "10s";
  Result<std::string> read(const std::string& path) override {
    auto it = listen.find(path);
    if (it == listen.end()) return Error{"cannot open " + path + ": No such file or directory", ENOENT};
    return "[global]\nprocess_control_timeout = " + process_control_timeout + "\n[pool]\nlisten = " + it->second +
           "\npm = " + pm + "\n";
  }
  Result<std::vector<std::string>> glob(const std::string&) override { return std::vector<std::string>{}; }
  std::string canonical(const std::string& path) override { return path; }
  std::optional<sys::FileStat> stat(const std::string&) override { return std::nullopt; }
};

class FakeProbe final : public sys::ListenerSource {
 public:
  std::map<sys::ListenerId, sys::ListenerSnapshot> listeners;
  bool broken = false;
  Result<sys::ListenerId> add(const SocketAddress& a) override {
    sys::ListenerId id = next_++;
    sys::ListenerSnapshot s;
    s.id = id;
    s.address = a;
    s.bound = a;
    s.listening = true;
    listeners[id] = s;
    return id;
  }
  int batches = 0;  // add_many calls
  std::vector<Result<sys::ListenerId>> add_many(const std::vector<SocketAddress>& addresses) override {
    ++batches;
    return ListenerSource::add_many(addresses);
  }
  Result<void> remove(sys::ListenerId id) override {
    listeners.erase(id);
    return {};
  }
  void rearm(sys::ListenerId id) override {
    if (!listeners.count(id)) return;
    auto& l = listeners[id];
    l.first_use_ns = l.first_arrival_ns = l.first_response_ns = 0;
  }
  Result<std::vector<sys::ListenerSnapshot>> read() override {
    if (broken) return Error{"sock_diag failed"};
    std::vector<sys::ListenerSnapshot> out;
    for (const auto& [id, s] : listeners) out.push_back(s);
    return out;
  }
  sys::ListenerSnapshot& at(const std::string& address) {
    for (auto& [id, s] : listeners)
      if (s.address.to_string() == address) return s;
    throw std::runtime_error("no listener " + address);
  }

 private:
  sys::ListenerId next_ = 1;
};

class FakeProcesses final : public sys::ProcessSource {
 public:
  std::set<std::string> pools;
  std::map<std::string, uint32_t> workers;  // by pool; 0 when not set
  Result<void> add_pool(const std::string& pool, const std::string&, std::optional<int32_t>) override {
    pools.insert(pool);
    return {};
  }
  void remove_pool(const std::string& pool) override { pools.erase(pool); }
  std::optional<PoolProcesses> processes(const std::string& pool) const override {
    if (!pools.count(pool)) return std::nullopt;
    auto w = workers.count(pool) ? workers.at(pool) : 0u;
    return PoolProcesses{1 + w, w, true, 100};
  }
};

class PoolManagerTest : public ::testing::Test {
 protected:
  MonoTime clock = std::chrono::duration_cast<MonoTime>(1000s);
  FakeSystemd systemd;
  FakeProbe probe;
  FakeProcesses processes;
  FpmFiles files;
  kinds::Kinds kinds{files};
  std::map<std::string, std::string>& fpm_listen = files.listen;  // config path -> listen
  std::set<std::string> vanished;
  std::vector<std::string> nudged;  // addresses, in order
  bool nudge_fails = false;
  std::set<uint32_t> waiting;          // sockets (inodes) a worker is blocked reading
  std::vector<uint32_t> shut_down;     // what the manager shut down for a stop
  std::set<uint32_t> request_arrives;  // a request comes on these between the last look and the shutdown

  std::unique_ptr<PoolManager> manager(DaemonConfig config = base_config()) {
    PoolManager::Deps deps{systemd,
                           probe,
                           processes,
                           kinds,
                           [this] { return clock; },
                           [this](const std::string& path) { return !vanished.count(path); },
                           [](const std::string&) -> std::optional<uint64_t> { return 4u << 20; },
                           [this](const SocketAddress& a, const std::optional<sys::SocketFile>&) -> Result<void> {
                             if (nudge_fails) return Error{"nudge " + a.to_string() + ": connect: Permission denied"};
                             nudged.push_back(a.to_string());
                             return {};
                           },
                           [this](const std::string&, const std::vector<uint32_t>& inodes) {
                             size_t n = 0;
                             for (uint32_t i : inodes) n += waiting.count(i);
                             return n;
                           },
                           [this](const std::string&, const std::vector<uint32_t>& inodes) {
                             size_t n = 0;
                             for (uint32_t i : inodes)
                               if (waiting.count(i) && !request_arrives.count(i)) {
                                 shut_down.push_back(i);
                                 ++n;
                               }
                             return n;
                           }};
    return std::make_unique<PoolManager>(config, deps);
  }
  // A whole discovery, systemd answering at once.
  void discover(PoolManager& m) {
    bool done = false;
    m.discover([&] { done = true; });
    systemd.pump();
    ASSERT_TRUE(done);
    ASSERT_FALSE(m.discovering());
  }
  // What systemd signalled, taken in, and the reads it called for answered.
  void signals(PoolManager& m) {
    m.on_unit_events(systemd.take_events());
    systemd.pump();
  }
  void signals(PoolManager& m, std::vector<sys::UnitEvent> events) {
    m.on_unit_events(events);
    systemd.pump();
  }
  static DaemonConfig base_config() {
    DaemonConfig c;
    c.defaults.idle_timeout = 60s;
    c.defaults.min_uptime = 10s;
    c.defaults.stall_timeout = 0s;  // the stall tests turn it on
    c.unit_patterns = {"php-fpm@*.service"};
    return c;
  }
  void add_safe_pool(const std::string& name) {
    systemd.add_pool(name, "/run/php/" + name + ".sock", clock);
    fpm_listen["/etc/php/" + name + ".conf"] = "/run/php/" + name + ".sock.inherited";
  }
  // One discovered pool, php-fpm@a, whose php-fpm runs `pm`, looked at for stalls every `stall_timeout`.
  std::unique_ptr<PoolManager> stall_manager(const std::string& pm, std::chrono::seconds stall_timeout) {
    files.pm = pm;
    add_safe_pool("php-fpm@a");
    auto config = base_config();
    config.defaults.stall_timeout = stall_timeout;
    auto m = manager(config);
    discover(*m);
    return m;
  }
  // One safe running pool, php-fpm@a, whose stop idlepoold asked systemd for after its idle timeout.
  std::unique_ptr<PoolManager> asked_to_stop_after_its_idle_timeout() {
    add_safe_pool("php-fpm@a");
    auto m = manager();
    discover(*m);
    clock += 60s;
    m->evaluate();
    EXPECT_EQ(systemd.stopped, std::vector<std::string>{"php-fpm@a.service"});
    return m;
  }
  void evaluate_every(PoolManager& m, std::chrono::seconds step, int times) {
    for (int i = 0; i < times; ++i) {
      m.evaluate();
      clock += step;
    }
  }
  const status::Pool& status_of(PoolManager& m, const std::string& unit) {
    statuses_ = m.status();
    for (const auto& s : statuses_)
      if (s.unit == unit) return s;
    throw std::runtime_error("no pool " + unit);
  }
  // Its decision as idlepoolctl would print it.
  std::string reason_of(PoolManager& m, const std::string& unit) {
    return describe(status_of(m, unit).decision, clock);
  }
  uint64_t stops_of(PoolManager& m, const std::string& unit, status::StopCause c = status::StopCause::kIdle) {
    return status_of(m, unit).stops[static_cast<size_t>(c)];
  }
  uint64_t stalls_of(PoolManager& m, const std::string& unit, status::StallAction a) {
    return status_of(m, unit).stalls[static_cast<size_t>(a)];
  }
  std::vector<status::Pool> statuses_;
};

TEST_F(PoolManagerTest, DiscoversPoolsWithTheirSocketsAndSkipsUnknownUnits) {
  add_safe_pool("php-fpm@a");
  add_safe_pool("php-fpm@b");
  systemd.add_pool("other", "/run/other.sock", clock);  // not matching the pattern
  auto config = base_config();
  config.units = {"missing.service"};  // named but not there: an error in the log, no crash
  auto m = manager(config);
  discover(*m);
  auto st = m->status();
  ASSERT_EQ(st.size(), 2u);
  EXPECT_EQ(st[0].unit, "php-fpm@a.service");
  ASSERT_EQ(st[0].sockets.size(), 1u);
  EXPECT_EQ(st[0].sockets[0].address, "/run/php/php-fpm@a.sock");
  EXPECT_EQ(probe.listeners.size(), 2u);
  EXPECT_EQ(probe.batches, 1)
      << "every new pool's sockets registered in one call (one socket dump for a thousand pools)";
  EXPECT_EQ(processes.pools.size(), 2u);
}

TEST_F(PoolManagerTest, ALongDiscoveryGoesInBatchesAndTheModelIsReadableMeanwhile) {
  for (int i = 0; i < 120; ++i) add_safe_pool("php-fpm@p" + std::to_string(i));
  auto m = manager(base_config());
  std::vector<size_t> seen;
  m->on_discovery_progress([&](size_t done, size_t total) {
    EXPECT_EQ(total, 120u);
    seen.push_back(done);
  });
  bool done = false;
  m->discover([&] { done = true; });
  EXPECT_TRUE(m->status().empty()) << "nothing is answered within the call that asks";
  EXPECT_TRUE(m->discovering());
  systemd.pump_once();  // the unit list
  systemd.pump_once();  // the first batch of services
  EXPECT_EQ(m->status().size(), 50u) << "a batch's services are in the model as soon as they are read";
  EXPECT_TRUE(probe.listeners.empty()) << "sockets are registered once the discovery is through";
  EXPECT_NE(m->summary().find("discovering (0 of 120"), std::string::npos) << m->summary();
  EXPECT_TRUE(m->discovery_progress().running);
  systemd.pump();
  EXPECT_TRUE(done);
  EXPECT_FALSE(m->discovering());
  EXPECT_EQ(seen, (std::vector<size_t>{50, 100}));
  EXPECT_EQ(m->status().size(), 120u);
  EXPECT_EQ(probe.listeners.size(), 120u);
  EXPECT_EQ(probe.batches, 1) << "every new pool's sockets registered in one call";
}

// A request during a long discovery is invisible to the probe until the pool's sockets are registered: the idle
// window starts then, not when the unit was read.
TEST_F(PoolManagerTest, TheIdleWindowStartsWhenTheSocketsAreWatched) {
  add_safe_pool("php-fpm@a");
  auto m = manager();
  m->discover();
  systemd.pump_once();  // listed
  systemd.pump_once();  // the service read at t
  clock += 10s;         // a long discovery: the sockets are read and registered 10 s later
  systemd.pump();
  ASSERT_FALSE(m->discovering());
  auto next = m->evaluate();
  ASSERT_TRUE(next.has_value());
  EXPECT_EQ(*next, clock + 60s) << "a whole idle window from the registration";
  clock += 55s;  // 65 s after the unit was read, 55 s after the sockets were
  m->evaluate();
  EXPECT_TRUE(systemd.stopped.empty());
  clock += 5s;
  m->evaluate();
  EXPECT_EQ(systemd.stopped.size(), 1u);
}

TEST_F(PoolManagerTest, AFailedStopIsTriedAgainLater) {
  add_safe_pool("php-fpm@a");
  auto m = manager();
  discover(*m);
  clock += 60s;
  systemd.stop_error = "Access denied";
  m->evaluate();
  systemd.pump();
  ASSERT_EQ(systemd.stopped.size(), 1u);
  EXPECT_EQ(status_of(*m, "php-fpm@a.service").decision.rule, Rule::kStopFailed);
  EXPECT_NE(reason_of(*m, "php-fpm@a.service").find("Access denied"), std::string::npos);
  EXPECT_TRUE(m->dirty());
  auto next = m->evaluate();
  EXPECT_EQ(systemd.stopped.size(), 1u) << "not at once";
  EXPECT_EQ(next, clock + 30s);
  systemd.stop_error.reset();
  clock += 30s;
  m->evaluate();
  EXPECT_EQ(systemd.stopped.size(), 2u);
  EXPECT_EQ(m->stats().bus_errors, 1u);
}

// The values signals carry while a read of the unit is in flight are newer than what the read answers.
TEST_F(PoolManagerTest, SignalsDuringAReadWinOverItsAnswer) {
  auto m = asked_to_stop_after_its_idle_timeout();
  systemd.signal_state("php-fpm@a.service", "inactive", "dead");
  signals(*m);
  // A wake: the start is read (its cgroup) ...
  systemd.service_units["php-fpm@a.service"].active_enter = clock;
  systemd.signal_state("php-fpm@a.service", "active", "running");
  m->on_unit_events(systemd.take_events());
  // ... and before the answer comes, systemd signals the pool going down again; the read still says "running".
  systemd.service_units["php-fpm@a.service"].active_state = "active";
  systemd.service_units["php-fpm@a.service"].sub_state = "running";
  sys::UnitChanges down;
  down.active_state = "deactivating";
  down.sub_state = "stop-sigquit";
  m->on_unit_events({{sys::UnitEvent::Kind::kChanged, "php-fpm@a.service", {}, down}});
  systemd.pump();
  EXPECT_EQ(status_of(*m, "php-fpm@a.service").active_state, "deactivating");
}

TEST_F(PoolManagerTest, SignalsOfOneLoopStepAreReadOnceAPoolInOneBatch) {
  for (const char* p : {"php-fpm@a", "php-fpm@b", "php-fpm@c"}) add_safe_pool(p);
  auto m = manager();
  discover(*m);
  systemd.service_reads = systemd.batches = 0;
  // A stop: several signals for each unit (Unit and Service interfaces, each state on the way), two units at once.
  for (int i = 0; i < 3; ++i) {
    systemd.set_state("php-fpm@a.service", "deactivating", "stop-sigquit");
    systemd.set_state("php-fpm@b.service", "deactivating", "stop-sigquit");
  }
  systemd.events.push_back({sys::UnitEvent::Kind::kChanged, "unrelated.service", {}});
  signals(*m);
  EXPECT_EQ(systemd.service_reads, 2) << "a and b once each, nothing else";
  EXPECT_EQ(systemd.batches, 1);
  EXPECT_EQ(status_of(*m, "php-fpm@a.service").active_state, "deactivating");
}

TEST_F(PoolManagerTest, SignalValuesAreAppliedWithoutReadingAndAStartIsReadOnce) {
  auto m = asked_to_stop_after_its_idle_timeout();
  systemd.service_reads = systemd.socket_reads = 0;
  systemd.signal_state("php-fpm@a.service", "deactivating", "stop-sigquit");
  signals(*m);
  systemd.signal_state("php-fpm@a.service", "inactive", "dead");
  systemd.signal_state("php-fpm@a.socket", "active", "listening");
  signals(*m);
  EXPECT_EQ(systemd.service_reads, 0) << "a stop is followed from the signals alone";
  EXPECT_EQ(systemd.socket_reads, 0);
  EXPECT_EQ(stops_of(*m, "php-fpm@a.service"), 1u);
  EXPECT_FALSE(processes.pools.count("php-fpm@a.service"));
  // The wake: read once as it comes up (its cgroup), then signals again.
  systemd.service_units["php-fpm@a.service"].active_enter = clock;
  systemd.signal_state("php-fpm@a.socket", "active", "running");
  systemd.signal_state("php-fpm@a.service", "activating", "start");
  signals(*m);
  systemd.signal_state("php-fpm@a.service", "active", "running");
  signals(*m);
  EXPECT_EQ(systemd.service_reads, 1);
  EXPECT_EQ(systemd.socket_reads, 0);
  EXPECT_EQ(status_of(*m, "php-fpm@a.service").wakes, 1u);
  EXPECT_EQ(status_of(*m, "php-fpm@a.service").active_state, "active");
  EXPECT_TRUE(processes.pools.count("php-fpm@a.service")) << "followed again from its start";
  // A signal saying something else idlepool reads changed (without the value) makes it read the unit.
  sys::UnitChanges other;
  other.needs_read = true;
  systemd.events.push_back({sys::UnitEvent::Kind::kChanged, "php-fpm@a.service", {}, other});
  signals(*m);
  EXPECT_EQ(systemd.service_reads, 2);
}

TEST_F(PoolManagerTest, ADaemonReloadReadsEveryPoolAgain) {
  add_safe_pool("php-fpm@a");
  auto m = manager();
  discover(*m);
  // The unit now also listens on a TCP port (a second socket unit), and its ExecStart points at a php-fpm
  // configuration that listens on the socket unit's own path (php-fpm would unlink it at exit).
  systemd.add_pool("php-fpm@a-tcp", "127.0.0.1:9001", clock);
  systemd.service_units["php-fpm@a.service"].triggered_by.push_back("php-fpm@a-tcp.socket");
  systemd.service_units["php-fpm@a.service"].exec_start[0].back() = "/etc/php/naive.conf";
  fpm_listen["/etc/php/naive.conf"] = "/run/php/php-fpm@a.sock";
  signals(*m, {{sys::UnitEvent::Kind::kReloaded, {}, {}}});
  const auto& st = status_of(*m, "php-fpm@a.service");
  ASSERT_EQ(st.sockets.size(), 2u);
  EXPECT_EQ(st.sockets[1].address, "127.0.0.1:9001");
  clock += 1h;
  m->evaluate();
  EXPECT_EQ(std::count(systemd.stopped.begin(), systemd.stopped.end(), "php-fpm@a.service"), 0)
      << "judged again after the reload: " << reason_of(*m, "php-fpm@a.service");
}

TEST_F(PoolManagerTest, StopsAnIdlePoolOnceAndCountsTheStopAndTheWake) {
  add_safe_pool("php-fpm@a");
  auto m = manager();
  discover(*m);
  auto next = m->evaluate();
  ASSERT_TRUE(next.has_value());
  EXPECT_EQ(*next, clock + 60s) << "the deadline is a whole idle window after watching began";
  EXPECT_TRUE(systemd.stopped.empty());
  clock += 60s;
  m->evaluate();
  ASSERT_EQ(systemd.stopped, std::vector<std::string>{"php-fpm@a.service"});
  m->evaluate();
  EXPECT_EQ(systemd.stopped.size(), 1u) << "a stop in progress is not asked again";
  systemd.set_state("php-fpm@a.service", "deactivating", "stop-sigquit");
  signals(*m);
  systemd.set_state("php-fpm@a.service", "inactive", "dead");
  signals(*m);
  EXPECT_EQ(stops_of(*m, "php-fpm@a.service"), 1u);
  EXPECT_FALSE(processes.pools.count("php-fpm@a.service"));
  systemd.service_units["php-fpm@a.service"].active_enter = clock;
  systemd.set_state("php-fpm@a.service", "active", "running");
  signals(*m);
  EXPECT_EQ(status_of(*m, "php-fpm@a.service").wakes, 1u);
  EXPECT_NE(m->summary().find("1 stops, 1 wakes"), std::string::npos) << m->summary();
}

TEST_F(PoolManagerTest, ActivityAndWorkInFlightKeepAPoolRunning) {
  add_safe_pool("php-fpm@a");
  auto m = manager();
  discover(*m);
  clock += 50s;
  probe.at("/run/php/php-fpm@a.sock").last_activity_ns = static_cast<uint64_t>(clock.count());
  clock += 30s;
  m->evaluate();
  EXPECT_TRUE(systemd.stopped.empty()) << "active 30 s ago";
  clock += 30s;
  probe.at("/run/php/php-fpm@a.sock").active = 1;
  auto next = m->evaluate();
  EXPECT_TRUE(systemd.stopped.empty()) << "a connection is in flight";
  EXPECT_EQ(next, clock + 5s);
  EXPECT_NE(reason_of(*m, "php-fpm@a.service").find("in flight"), std::string::npos);
  probe.at("/run/php/php-fpm@a.sock").active = 0;
  m->evaluate();
  EXPECT_EQ(systemd.stopped.size(), 1u);
}

// nginx's upstream keepalive holds a connection between requests: by default the stop waits for nginx to close it,
// and that close is not activity (the idle window is not started again).
TEST_F(PoolManagerTest, IdleKeptAliveConnectionsHoldTheStopUntilTheClientClosesThem) {
  add_safe_pool("php-fpm@a");
  auto m = manager();
  discover(*m);
  auto& sock = probe.at("/run/php/php-fpm@a.sock");
  sock.last_activity_ns = static_cast<uint64_t>(clock.count());
  sock.active = 1;
  sock.answered = {{77, 0}};
  waiting = {77};
  clock += 60s;
  EXPECT_EQ(m->evaluate(), clock + 5s);
  EXPECT_TRUE(systemd.stopped.empty()) << "keepalive-connections = wait";
  EXPECT_EQ(status_of(*m, "php-fpm@a.service").decision.rule, Rule::kKeptAlive);
  EXPECT_NE(reason_of(*m, "php-fpm@a.service").find("1 idle kept-alive connection held by the client"),
            std::string::npos)
      << reason_of(*m, "php-fpm@a.service");
  EXPECT_EQ(status_of(*m, "php-fpm@a.service").idle(), 1u);
  // nginx closes it (its keepalive_timeout): the probe dates nothing new, and the pool stops at once.
  clock += 45s;
  sock.active = 0;
  sock.answered.clear();
  m->evaluate();
  EXPECT_EQ(systemd.stopped, std::vector<std::string>{"php-fpm@a.service"});
  EXPECT_TRUE(shut_down.empty());
}

TEST_F(PoolManagerTest, CloseStopsThroughConnectionsAWorkerWaitsOnAndShutsThemDownFirst) {
  add_safe_pool("php-fpm@a");
  auto config = base_config();
  config.pools["php-fpm@a.service"].kept_alive = KeptAlive::kClose;
  auto m = manager(config);
  discover(*m);
  auto& sock = probe.at("/run/php/php-fpm@a.sock");
  // php-fpm: 77 read a request's end after its answer, 78 nothing; 79 received more (a new request).
  sock.active = 3;
  sock.answered = {{77, 8}, {78, 0}, {79, 9}};
  waiting = {77};  // 78 looks idle to the probe, but no worker waits on it: a response that paused
  clock += 60s;
  m->evaluate();
  EXPECT_TRUE(systemd.stopped.empty());
  EXPECT_EQ(reason_of(*m, "php-fpm@a.service"),
            "in flight: 1 active, 0 queued; 2 idle kept-alive connections held by the client");
  // The request on 79 is answered and its connection closed: 78 is still not one a worker waits on.
  sock.active = 2;
  sock.answered.pop_back();
  clock += 5s;
  m->evaluate();
  EXPECT_TRUE(systemd.stopped.empty());
  EXPECT_EQ(reason_of(*m, "php-fpm@a.service"),
            "in flight: 1 active, 0 queued; 1 idle kept-alive connection held by the client");
  EXPECT_TRUE(shut_down.empty());
  waiting = {77, 78};
  clock += 5s;
  m->evaluate();
  EXPECT_EQ(systemd.stopped, std::vector<std::string>{"php-fpm@a.service"});
  EXPECT_EQ(shut_down, (std::vector<uint32_t>{77, 78}));
}

TEST_F(PoolManagerTest, ARequestOnAKeptAliveConnectionAtTheStopKeepsThePoolRunning) {
  add_safe_pool("php-fpm@a");
  auto config = base_config();
  config.defaults.kept_alive = KeptAlive::kClose;
  auto m = manager(config);
  discover(*m);
  auto& sock = probe.at("/run/php/php-fpm@a.sock");
  sock.active = 2;
  sock.answered = {{77, 8}, {78, 8}};
  waiting = {77, 78};
  request_arrives = {78};
  clock += 60s;
  m->evaluate();
  EXPECT_TRUE(systemd.stopped.empty()) << "78 carries a request now";
  EXPECT_EQ(status_of(*m, "php-fpm@a.service").decision.rule, Rule::kInFlight);
  EXPECT_EQ(shut_down, std::vector<uint32_t>{77});
}

TEST_F(PoolManagerTest, TheRateLimitSpreadsABurstOfDeadlines) {
  for (int i = 0; i < 10; ++i) add_safe_pool("php-fpm@p" + std::to_string(i));
  auto config = base_config();
  config.max_stops_per_second = 2;
  config.stop_burst = 4;
  auto m = manager(config);
  discover(*m);
  clock += 60s;
  auto next = m->evaluate();
  EXPECT_EQ(systemd.stopped.size(), 4u);
  ASSERT_TRUE(next.has_value());
  EXPECT_EQ(*next, clock + 500ms);
  clock = *next;
  m->evaluate();
  EXPECT_EQ(systemd.stopped.size(), 5u);
}

TEST_F(PoolManagerTest, DryRunOnlySaysWhatItWouldDo) {
  add_safe_pool("php-fpm@a");
  auto config = base_config();
  config.dry_run = true;
  auto m = manager(config);
  discover(*m);
  clock += 61s;
  m->evaluate();
  m->evaluate();
  EXPECT_TRUE(systemd.stopped.empty());
  EXPECT_NE(reason_of(*m, "php-fpm@a.service").find("dry run: would stop"), std::string::npos);
}

TEST_F(PoolManagerTest, SafetyIsJudgedAgainAtEveryStart) {
  auto m = asked_to_stop_after_its_idle_timeout();
  systemd.set_state("php-fpm@a.service", "inactive", "dead");
  signals(*m);
  // Meanwhile its php-fpm configuration was edited to listen on the socket unit's own path: php-fpm would unlink it
  // at its next exit, and the pool could never wake again. The edit takes effect at the next start.
  fpm_listen["/etc/php/php-fpm@a.conf"] = "/run/php/php-fpm@a.sock";
  systemd.service_units["php-fpm@a.service"].active_enter = clock;
  systemd.set_state("php-fpm@a.service", "active", "running");
  signals(*m);
  clock += 1h;
  m->evaluate();
  EXPECT_EQ(systemd.stopped.size(), 1u) << "not stopped again";
  EXPECT_NE(reason_of(*m, "php-fpm@a.service").find("the socket unit's own path"), std::string::npos)
      << reason_of(*m, "php-fpm@a.service");
  // Mended, and a daemon-reload changed its unit: judged again, safe again.
  fpm_listen["/etc/php/php-fpm@a.conf"] = "/run/php/php-fpm@a.sock.inherited";
  systemd.service_units["php-fpm@a.service"].exec_start[0].push_back("--php-ini=/etc/php/a.ini");
  systemd.set_state("php-fpm@a.service", "active", "running");
  signals(*m);
  clock += 1h;
  m->evaluate();
  EXPECT_EQ(systemd.stopped.size(), 2u);
}

TEST_F(PoolManagerTest, NeverStopsUnsafePinnedOrUnwakeablePools) {
  systemd.add_pool("php-fpm@naive", "/run/php/naive.sock", clock);
  fpm_listen["/etc/php/php-fpm@naive.conf"] = "/run/php/naive.sock";
  add_safe_pool("php-fpm@pinned");
  add_safe_pool("php-fpm@deaf");
  systemd.sockets["php-fpm@deaf.socket"].active_state = "failed";
  systemd.add_pool("php-fpm@unread", "/run/php/unread.sock", clock);  // its php-fpm config cannot be read
  auto config = base_config();
  config.pools["php-fpm@pinned.service"].pin = true;
  auto m = manager(config);
  discover(*m);
  clock += 1h;
  m->evaluate();
  EXPECT_TRUE(systemd.stopped.empty());
  EXPECT_NE(reason_of(*m, "php-fpm@naive.service").find("the socket unit's own path"), std::string::npos);
  EXPECT_EQ(reason_of(*m, "php-fpm@pinned.service"), "pinned");
  EXPECT_NE(reason_of(*m, "php-fpm@deaf.service").find("cannot wake again"), std::string::npos);
  EXPECT_NE(reason_of(*m, "php-fpm@unread.service").find("cannot open /etc/php/php-fpm@unread.conf"),
            std::string::npos);
}

// php-fpm unlinks what it listens on: a pool listening on another pool's socket would make that one unable to wake.
TEST_F(PoolManagerTest, APoolListeningOnAnotherPoolsSocketIsNeverStopped) {
  add_safe_pool("php-fpm@a");
  systemd.add_pool("php-fpm@b", "/run/php/b.sock", clock);
  fpm_listen["/etc/php/php-fpm@b.conf"] = "/run/php/php-fpm@a.sock";
  auto m = manager();
  discover(*m);
  clock += 1h;
  m->evaluate();
  EXPECT_EQ(systemd.stopped, std::vector<std::string>{"php-fpm@a.service"}) << "b stays";
  EXPECT_NE(reason_of(*m, "php-fpm@b.service").find("the socket of php-fpm@a.service"), std::string::npos)
      << reason_of(*m, "php-fpm@b.service");
}

TEST_F(PoolManagerTest, AVanishedSocketPathIsRestoredAndThePoolNeverStoppedAgain) {
  add_safe_pool("php-fpm@a");
  auto m = manager();
  discover(*m);
  clock += 61s;
  m->evaluate();
  ASSERT_EQ(systemd.stopped.size(), 1u);
  vanished.insert("/run/php/php-fpm@a.sock");
  systemd.set_state("php-fpm@a.service", "inactive", "dead");
  signals(*m);
  EXPECT_EQ(systemd.restarted, std::vector<std::string>{"php-fpm@a.socket"});
  vanished.clear();
  systemd.service_units["php-fpm@a.service"].active_enter = clock;
  systemd.set_state("php-fpm@a.service", "active", "running");
  signals(*m);
  clock += 2h;
  m->evaluate();
  EXPECT_EQ(systemd.stopped.size(), 1u);
  EXPECT_NE(reason_of(*m, "php-fpm@a.service").find("vanished"), std::string::npos);
}

TEST_F(PoolManagerTest, AnUnreadableProbeStopsNothing) {
  add_safe_pool("php-fpm@a");
  auto m = manager();
  discover(*m);
  clock += 1h;
  probe.broken = true;
  auto next = m->evaluate();
  EXPECT_TRUE(systemd.stopped.empty());
  EXPECT_EQ(next, clock + 5s);
  probe.broken = false;
  m->evaluate();
  EXPECT_EQ(systemd.stopped.size(), 1u);
}

TEST_F(PoolManagerTest, UnitsAppearingAfterADaemonReloadArePickedUp) {
  auto m = manager();
  discover(*m);
  EXPECT_TRUE(m->status().empty());
  add_safe_pool("php-fpm@late");
  signals(*m, {{sys::UnitEvent::Kind::kReloaded, {}, {}}});
  ASSERT_EQ(m->status().size(), 1u);
  systemd.service_units.erase("php-fpm@late.service");
  signals(*m, {{sys::UnitEvent::Kind::kRemoved, "php-fpm@late.service", {}}});
  EXPECT_TRUE(m->status().empty());
  EXPECT_TRUE(probe.listeners.empty());
}

TEST_F(PoolManagerTest, PinsStopsNowAndAuditsForIdlepoolctl) {
  add_safe_pool("php-fpm@a");
  systemd.add_pool("php-fpm@naive", "/run/php/naive.sock", clock);
  fpm_listen["/etc/php/php-fpm@naive.conf"] = "/run/php/naive.sock";
  auto m = manager();
  discover(*m);
  EXPECT_FALSE(m->pin("nope.service", true).ok());
  ASSERT_TRUE(m->pin("php-fpm@a.service", true).ok());
  auto refused = m->stop_now("php-fpm@a.service");
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().message, "refused: pinned");
  ASSERT_TRUE(m->pin("php-fpm@a.service", false).ok());
  probe.at("/run/php/php-fpm@a.sock").active = 1;
  auto busy = m->stop_now("php-fpm@a.service");
  ASSERT_FALSE(busy.ok());
  EXPECT_NE(busy.error().message.find("in flight"), std::string::npos);
  probe.at("/run/php/php-fpm@a.sock").active = 0;
  auto ok = m->stop_now("php-fpm@a.service");  // idle for 0 s: the operator does not wait for the timeout
  ASSERT_TRUE(ok.ok()) << ok.error().message;
  EXPECT_EQ(systemd.stopped, std::vector<std::string>{"php-fpm@a.service"});
  auto unsafe = m->stop_now("php-fpm@naive.service");
  ASSERT_FALSE(unsafe.ok());
  EXPECT_NE(unsafe.error().message.find("unsafe"), std::string::npos);
  EXPECT_EQ(m->stop_now("nope.service").error().code, ENOENT);
  auto audit = m->audit();
  ASSERT_EQ(audit.size(), 2u);
  EXPECT_TRUE(audit[0].problems.empty()) << audit[0].unit;
  ASSERT_EQ(audit[1].problems.size(), 1u);
  EXPECT_NE(audit[1].problems[0].find("the socket unit's own path"), std::string::npos);
}

TEST_F(PoolManagerTest, MeasuresWakeLatencyAndMemoryReleased) {
  add_safe_pool("php-fpm@a");
  auto m = manager();
  discover(*m);
  clock += 61s;
  m->evaluate();
  systemd.set_state("php-fpm@a.service", "inactive", "dead");
  signals(*m);
  EXPECT_EQ(status_of(*m, "php-fpm@a.service").memory_released_bytes, 4u << 20);
  // A connection wakes it: systemd starts it at t, its first request comes 0.3 s later.
  clock += 100s;
  systemd.service_units["php-fpm@a.service"].inactive_exit = clock;
  systemd.service_units["php-fpm@a.service"].active_enter = clock + 200ms;
  systemd.set_state("php-fpm@a.service", "active", "running");
  signals(*m);
  probe.at("/run/php/php-fpm@a.sock").first_use_ns = static_cast<uint64_t>((clock + 300ms).count());
  clock += 1s;
  m->refresh();  // a scrape right after the wake shows it
  const auto& h = status_of(*m, "php-fpm@a.service").wake_latency;
  EXPECT_EQ(h.count, 1u);
  EXPECT_NEAR(h.sum, 0.3, 1e-9);
  EXPECT_EQ(h.buckets[3], 1u);  // the 0.5 s bucket
  m->evaluate();
  m->refresh();
  EXPECT_EQ(status_of(*m, "php-fpm@a.service").wake_latency.count, 1u) << "one wake, one observation";
}

// The wake as its visitor saw it: from its connection's arrival (or systemd's start, if that is earlier) to the first
// response; the slowest of the last hour.
TEST_F(PoolManagerTest, MeasuresTheVisitorsWakeAndTheSlowestOfTheHour) {
  add_safe_pool("php-fpm@a");
  auto m = manager();
  discover(*m);
  auto& sock = probe.at("/run/php/php-fpm@a.sock");
  auto ns = [](MonoTime t) { return static_cast<uint64_t>(t.count()); };
  uint64_t wakes = 0;
  auto stop_and_wake = [&](std::optional<std::chrono::milliseconds> arrival_before_start,
                           std::chrono::milliseconds answered_after) {
    clock += 61s;
    m->evaluate();
    systemd.set_state("php-fpm@a.service", "inactive", "dead");
    signals(*m);
    clock += 100s;
    systemd.service_units["php-fpm@a.service"].inactive_exit = clock;
    systemd.set_state("php-fpm@a.service", "active", "running");
    signals(*m);
    sock.first_arrival_ns = arrival_before_start ? ns(clock - *arrival_before_start) : 0;
    sock.first_use_ns = ns(clock + 300ms);
    sock.last_activity_ns = sock.first_use_ns;
    m->refresh();
    EXPECT_EQ(status_of(*m, "php-fpm@a.service").visitor_wake.count, wakes) << "no response yet";
    sock.first_response_ns = ns(clock + answered_after);
    clock += 2s;
    m->refresh();
    ++wakes;
  };
  stop_and_wake(10ms, 900ms);
  auto s = status_of(*m, "php-fpm@a.service");
  EXPECT_EQ(s.visitor_wake.count, 1u);
  EXPECT_NEAR(s.visitor_wake.sum, 0.91, 1e-9);
  ASSERT_TRUE(s.slowest_visitor_wake);
  EXPECT_NEAR(*s.slowest_visitor_wake, 0.91, 1e-9);
  stop_and_wake(std::nullopt, 2500ms);  // the arrival unseen (a tier without it): from systemd's start
  stop_and_wake(0ms, 400ms);
  s = status_of(*m, "php-fpm@a.service");
  EXPECT_EQ(s.visitor_wake.count, 3u);
  EXPECT_NEAR(*s.slowest_visitor_wake, 2.5, 1e-9);
  clock += 61min;
  EXPECT_FALSE(status_of(*m, "php-fpm@a.service").slowest_visitor_wake) << "none in the last hour";
  EXPECT_EQ(status_of(*m, "php-fpm@a.service").visitor_wake.count, 3u);
}

// php-fpm's ondemand master missed the edge of a connection (php bug #69724): nothing accepts it, no worker runs.
TEST_F(PoolManagerTest, AStalledOndemandPoolIsNudgedOncePerStallTimeoutUntilItAccepts) {
  auto m = stall_manager("ondemand", 5s);
  auto& sock = probe.at("/run/php/php-fpm@a.sock");
  sock.accepts = 7;
  sock.last_activity_ns = static_cast<uint64_t>(clock.count());
  MonoTime t0 = clock;
  auto next = m->evaluate();
  ASSERT_TRUE(next.has_value());
  EXPECT_EQ(*next, t0 + 5s) << "one look stall-timeout after it began watching a running pool";
  clock = t0 + 5s;
  next = m->evaluate();
  ASSERT_TRUE(next.has_value());
  EXPECT_EQ(*next, t0 + 60s) << "nothing queued: no more looks, only the idle deadline (no periodic wakeups)";

  // A worker served a request and was reaped; a connection that arrived meanwhile stays queued.
  clock = t0 + 10s;
  sock.accepts = 8;
  sock.last_activity_ns = static_cast<uint64_t>(clock.count());
  MonoTime gone = clock;
  m->on_pool_events(
      {{"php-fpm@a.service", PoolEvent::Kind::kLastWorkerExited, 1234, {}, static_cast<uint64_t>(gone.count())}});
  next = m->evaluate();
  ASSERT_TRUE(next.has_value());
  EXPECT_EQ(*next, gone + 5s) << "a look stall-timeout after the last worker left";
  sock.backlog = 1;
  clock = gone + 5s;
  m->evaluate();
  ASSERT_EQ(nudged.size(), 1u) << "queued with no accept since the last worker left, for stall-timeout: nudged";
  EXPECT_EQ(nudged[0], "/run/php/php-fpm@a.sock");
  clock += 2s;
  next = m->evaluate();
  EXPECT_EQ(nudged.size(), 1u) << "one nudge a stall-timeout";
  ASSERT_TRUE(next.has_value());
  EXPECT_EQ(*next, gone + 10s);
  clock = gone + 10s;
  m->evaluate();
  EXPECT_EQ(nudged.size(), 2u) << "still stalled: nudged again";
  // The nudge made a worker; it took the queue.
  sock.accepts = 10;
  sock.backlog = 0;
  clock += 10s;
  m->evaluate();
  EXPECT_EQ(nudged.size(), 2u);
  EXPECT_EQ(stalls_of(*m, "php-fpm@a.service", status::StallAction::kNudged), 2u);
  EXPECT_TRUE(systemd.stopped.empty()) << "never stopped with a connection queued";
}

TEST_F(PoolManagerTest, QueuedConnectionsThatMoveOrHaveWorkersAreNoStall) {
  auto m = stall_manager("ondemand", 5s);
  auto& sock = probe.at("/run/php/php-fpm@a.sock");
  sock.backlog = 3;
  for (int i = 0; i < 6; ++i) {  // accepts progress every 2 s: a busy pool, not a stalled one
    m->evaluate();
    sock.accepts += 1;
    clock += 2s;
  }
  EXPECT_TRUE(nudged.empty());
  processes.workers["php-fpm@a.service"] = 4;  // max_children busy: they take the queue when done
  clock += 30s;
  m->evaluate();
  clock += 30s;
  m->evaluate();
  EXPECT_TRUE(nudged.empty());
  EXPECT_EQ(status_of(*m, "php-fpm@a.service").stalls, (std::array<uint64_t, 3>{}));
}

TEST_F(PoolManagerTest, AStalledPoolThatIsNotOndemandIsReportedOnceAndNotNudged) {
  auto m = stall_manager("dynamic", 5s);
  probe.at("/run/php/php-fpm@a.sock").backlog = 1;
  evaluate_every(*m, 6s, 5);
  EXPECT_TRUE(nudged.empty());
  EXPECT_EQ(stalls_of(*m, "php-fpm@a.service", status::StallAction::kReported), 1u) << "one report a stall";
}

TEST_F(PoolManagerTest, AFailedNudgeIsCountedApartAndTriedAgain) {
  auto m = stall_manager("ondemand", 5s);
  nudge_fails = true;
  probe.at("/run/php/php-fpm@a.sock").backlog = 1;
  evaluate_every(*m, 6s, 4);  // first seen, then stalled three times
  EXPECT_EQ(stalls_of(*m, "php-fpm@a.service", status::StallAction::kNudgeFailed), 3u);
  EXPECT_EQ(stalls_of(*m, "php-fpm@a.service", status::StallAction::kNudged), 0u);
  nudge_fails = false;
  evaluate_every(*m, 6s, 1);
  EXPECT_EQ(stalls_of(*m, "php-fpm@a.service", status::StallAction::kNudged), 1u);
}

// Found by the wake benchmark: five stop-and-wake cycles within 10 s and systemd failed the socket unit for good
// (service-start-limit-hit). A stop is a wake to come: never one that could cross systemd's start limit.
TEST_F(PoolManagerTest, NeverStopsAPoolWhoseWakeCouldHitSystemdsStartLimit) {
  add_safe_pool("php-fpm@a");
  systemd.service_units["php-fpm@a.service"].start_limit_burst = 5;
  systemd.service_units["php-fpm@a.service"].start_limit_interval = 10s;
  auto m = manager();
  discover(*m);
  for (int wake = 1; wake <= 4; ++wake) {
    auto r = m->stop_now("php-fpm@a.service");
    ASSERT_TRUE(r.ok()) << "stop " << wake << ": " << r.error().message;
    systemd.set_state("php-fpm@a.service", "inactive", "dead");
    signals(*m);
    clock += 1s;
    systemd.set_state("php-fpm@a.service", "active", "running");  // a request woke it
    signals(*m);
    clock += 1s;
  }
  auto refused = m->stop_now("php-fpm@a.service");
  ASSERT_FALSE(refused.ok()) << "4 starts in 10 s: the next wake could be the one systemd refuses";
  EXPECT_NE(refused.error().message.find("start limit"), std::string::npos) << refused.error().message;
  auto next = m->evaluate();
  ASSERT_TRUE(next.has_value());
  EXPECT_LE(*next, clock + 10s) << "looked at again when the oldest start leaves the interval";
  clock += 10s;
  EXPECT_TRUE(m->stop_now("php-fpm@a.service").ok()) << "the starts aged out";
}

TEST_F(PoolManagerTest, StallTimeoutZeroTurnsStallsOff) {
  auto m = stall_manager("ondemand", 0s);
  probe.at("/run/php/php-fpm@a.sock").backlog = 1;
  evaluate_every(*m, 6s, 5);
  EXPECT_TRUE(nudged.empty());
}

// idle-timeout = adaptive with prewarm: a client every 300 s. The first silences end with wakes (measured exactly),
// the window is learnt, and once five periods between wakes say the client is regular the pool is started before its
// request,
// which then counts as a pre-warm hit, not a wake. What was learnt survives a restart through learnt()/restore().
class AdaptivePoolTest : public PoolManagerTest {
 protected:
  static DaemonConfig adaptive_config() {
    DaemonConfig c = base_config();
    c.defaults.adaptive.on = true;
    c.defaults.adaptive.min = 10s;
    c.defaults.adaptive.max = 120s;
    c.defaults.adaptive.fallback = 60s;
    c.defaults.adaptive.min_samples = 3;
    c.defaults.adaptive.cold_start_cost = 30s;
    c.defaults.adaptive.prewarm = true;
    return c;
  }
  std::optional<MonoTime> next;
  // The daemon's loop until `t`: it evaluates at each time it asked for, and systemd carries out its stops and
  // pre-warms at once.
  void run_until(PoolManager& m, MonoTime t) {
    while (next && *next <= t) {
      clock = std::max(clock, *next);
      size_t stops = systemd.stopped.size(), starts = systemd.started.size();
      next = m.evaluate();
      systemd.pump();
      if (systemd.stopped.size() > stops) {
        systemd.set_state("php-fpm@a.service", "inactive", "dead");
        signals(m);
        next = m.evaluate();
      }
      if (systemd.started.size() > starts && systemd_starts) start(m);
    }
    clock = t;
  }
  bool systemd_starts = true;  // a pre-warm's StartUnit starts the pool (false: the job fails unseen)
  // Six wakes 300 s apart (five regular periods): the seventh request's pre-warm is planned. Returns when the cycle
  // began.
  MonoTime learn_a_periodic_client(PoolManager& m) {
    const MonoTime start = clock;
    next = m.evaluate();
    request(m);
    for (int k = 1; k <= 6; ++k) {
      run_until(m, start + k * 300s);
      request(m);
    }
    return start;
  }
  void start(PoolManager& m) {
    systemd.service_units["php-fpm@a.service"].inactive_exit = clock;
    systemd.service_units["php-fpm@a.service"].active_enter = clock;
    systemd.set_state("php-fpm@a.service", "active", "running");
    signals(m);
    next = m.evaluate();
  }
  // A request at `clock`: a stopped pool is woken by it (socket activation).
  void request(PoolManager& m) {
    if (!status_of(m, "php-fpm@a.service").running) start(m);
    auto& l = probe.at("/run/php/php-fpm@a.sock");
    l.last_activity_ns = static_cast<uint64_t>(clock.count());
    if (l.first_use_ns == 0) l.first_use_ns = l.last_activity_ns;
    next = m.evaluate();
  }
};

TEST_F(AdaptivePoolTest, LearnsAPeriodicClientsWindowAndPrewarmsBeforeItsRequest) {
  add_safe_pool("php-fpm@a");
  auto m = manager(adaptive_config());
  discover(*m);
  const MonoTime start = clock;
  next = m->evaluate();
  request(*m);
  EXPECT_EQ(status_of(*m, "php-fpm@a.service").window.reason, WindowReason::kFallback);
  for (int k = 1; k <= 6; ++k) {
    run_until(*m, start + k * 300s);
    EXPECT_FALSE(status_of(*m, "php-fpm@a.service").running) << "cycle " << k << ": stopped before the request";
    request(*m);
  }
  const auto& s = status_of(*m, "php-fpm@a.service");
  EXPECT_EQ(s.wakes, 6u);
  EXPECT_EQ(s.window.reason, WindowReason::kLearnt) << describe(s.window);
  EXPECT_EQ(s.window.samples, 6u);
  EXPECT_EQ(s.window.value, 10s) << "silences of 300 s, a cold start priced at 30 s: stop at the minimum";
  EXPECT_TRUE(systemd.started.empty());
  // Five regular periods: started a margin (30 s) before the seventh request, held until 30 s after it.
  run_until(*m, start + 7 * 300s - 1s);
  ASSERT_EQ(systemd.started, std::vector<std::string>{"php-fpm@a.service"});
  EXPECT_TRUE(status_of(*m, "php-fpm@a.service").running);
  EXPECT_EQ(status_of(*m, "php-fpm@a.service").window.reason, WindowReason::kPrewarm);
  clock = start + 7 * 300s;
  request(*m);
  const auto& hit = status_of(*m, "php-fpm@a.service");
  EXPECT_EQ(hit.prewarms, 1u);
  EXPECT_EQ(hit.prewarm_hits, 1u);
  EXPECT_EQ(hit.wakes, 6u) << "a pre-warmed start is no wake";
  EXPECT_EQ(hit.window.reason, WindowReason::kLearnt);

  // A restarted daemon starts from what this one learnt.
  auto learnt = m->learnt();
  ASSERT_EQ(learnt.count("php-fpm@a.service"), 1u);
  EXPECT_EQ(learnt["php-fpm@a.service"].silences.total(), 7u);
  EXPECT_EQ(learnt["php-fpm@a.service"].recent.count, 6u);
  auto again = manager(adaptive_config());
  again->restore(learnt);
  discover(*again);
  again->evaluate();
  EXPECT_EQ(status_of(*again, "php-fpm@a.service").window.reason, WindowReason::kLearnt);
  EXPECT_EQ(status_of(*again, "php-fpm@a.service").window.samples, 7u);
}

TEST_F(AdaptivePoolTest, APrewarmWhoseStartIsNeverSeenIsGivenUpWhenItsHoldEnds) {
  add_safe_pool("php-fpm@a");
  auto m = manager(adaptive_config());
  discover(*m);
  const MonoTime start = learn_a_periodic_client(*m);
  systemd_starts = false;
  run_until(*m, start + 7 * 300s - 1s);
  ASSERT_EQ(systemd.started.size(), 1u);
  EXPECT_EQ(status_of(*m, "php-fpm@a.service").prewarms, 1u);
  EXPECT_EQ(status_of(*m, "php-fpm@a.service").window.reason, WindowReason::kPrewarm);
  // Held until 30 s after the request was due; the pool never came up.
  run_until(*m, start + 7 * 300s + 31s);
  EXPECT_EQ(status_of(*m, "php-fpm@a.service").window.reason, WindowReason::kLearnt) << "the slot is given back";
  EXPECT_EQ(systemd.started.size(), 1u) << "one pre-warm per silence";
  // The client's request wakes it as any other: a wake, the silence measured from its last request.
  clock = start + 7 * 300s + 40s;
  request(*m);
  EXPECT_EQ(status_of(*m, "php-fpm@a.service").wakes, 7u);
  EXPECT_EQ(status_of(*m, "php-fpm@a.service").prewarm_hits, 0u);
}

// A pre-warm whose start is slow (still activating when its hold ends) is kept: the request meets the pool as it comes
// up, and that is a hit, not a wake.
TEST_F(AdaptivePoolTest, APrewarmStillStartingWhenItsHoldEndsIsKept) {
  add_safe_pool("php-fpm@a");
  auto m = manager(adaptive_config());
  discover(*m);
  const MonoTime t0 = learn_a_periodic_client(*m);
  systemd_starts = false;
  run_until(*m, t0 + 7 * 300s - 1s);
  ASSERT_EQ(systemd.started.size(), 1u);
  systemd.set_state("php-fpm@a.service", "activating", "start");
  signals(*m);
  next = m->evaluate();
  run_until(*m, t0 + 7 * 300s + 45s);  // past the hold (30 s after the request was due)
  EXPECT_EQ(status_of(*m, "php-fpm@a.service").window.reason, WindowReason::kPrewarm) << "kept while it starts";
  start(*m);
  request(*m);
  EXPECT_EQ(status_of(*m, "php-fpm@a.service").prewarm_hits, 1u);
  EXPECT_EQ(status_of(*m, "php-fpm@a.service").wakes, 6u) << "a slow pre-warm is no wake";
}

// The guest's case: a client every 15 s, wakes that take 5 s, a 2 s window: the periods between wakes stay regular.
TEST_F(AdaptivePoolTest, SlowWakesDoNotHideAPeriodicClient) {
  add_safe_pool("php-fpm@a");
  DaemonConfig c = adaptive_config();
  c.defaults.adaptive.min = 2s;
  c.defaults.adaptive.max = 8s;
  c.defaults.adaptive.fallback = 3s;
  c.defaults.adaptive.cold_start_cost = 2s;
  c.defaults.min_uptime = 2s;
  auto m = manager(c);
  discover(*m);
  const MonoTime t0 = clock;
  next = m->evaluate();
  request(*m);
  for (int k = 1; k <= 6; ++k) {
    run_until(*m, t0 + k * 15s);
    ASSERT_FALSE(status_of(*m, "php-fpm@a.service").running) << k;
    auto& sock = probe.at("/run/php/php-fpm@a.sock");
    sock.backlog = 1;  // woken by the request's connection, which waits 5 s to be accepted
    start(*m);
    run_until(*m, clock + 5s);
    sock.backlog = 0;
    request(*m);
  }
  EXPECT_EQ(status_of(*m, "php-fpm@a.service").wakes, 6u);
  run_until(*m, t0 + 7 * 15s - 500ms);
  EXPECT_EQ(systemd.started, std::vector<std::string>{"php-fpm@a.service"});
}

TEST_F(AdaptivePoolTest, NoPrewarmForAPoolStoppedByHandNorBeyondMaxPrewarming) {
  add_safe_pool("php-fpm@a");
  auto config = adaptive_config();
  config.max_prewarming = 0;
  auto m = manager(config);
  discover(*m);
  const MonoTime start = clock;
  next = m->evaluate();
  request(*m);
  for (int k = 1; k <= 7; ++k) {
    run_until(*m, start + k * 300s);
    request(*m);
  }
  EXPECT_TRUE(systemd.started.empty()) << "max-prewarming = 0";
  EXPECT_EQ(status_of(*m, "php-fpm@a.service").wakes, 7u);
}

}  // namespace
}  // namespace idlepool::daemon
