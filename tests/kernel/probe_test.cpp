// The probe loaded into the running kernel, counting real connections on real sockets. Needs root.
//
// Each tier in IDLEPOOL_TEST_TIERS (comma-separated; default "auto,syscall") runs every test, for TCP over IPv4,
// TCP over IPv6 and unix sockets. The listening socket is held by this process (as systemd holds it) and accepted on
// by forked workers of a forked master (as php-fpm does), which are already blocked in accept() when the socket is
// registered, as a running pool's workers are when idlepoold starts.
//
// Environment set by the runners (CMake on the host, tests/qemu/run-kernel-matrix.sh in guests):
//   IDLEPOOL_EXPECT_AUTO_TIER  the tier "auto" must pick on this kernel (host 6.18: sock; Debian 6.1/6.12: fentry)
//   IDLEPOOL_UNAVAILABLE_TIERS tiers this kernel must refuse, with a reason (host: fentry; 6.1: sock)
#include "idlepool/sys/probe.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <grp.h>
#include <gtest/gtest.h>
#include <linux/capability.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <thread>

#include "test_server.h"

namespace idlepool::testing {
namespace {

using sys::ListenerId;
using sys::ListenerSnapshot;
using sys::Probe;
using sys::Tier;

std::vector<std::string> split(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream ss(text);
  for (std::string item; std::getline(ss, item, ',');)
    if (!item.empty()) out.push_back(item);
  return out;
}

std::string env_or(const char* name, const char* fallback) {
  const char* v = std::getenv(name);
  return v ? v : fallback;
}

// One probe per tier for the whole run: loading takes a while under emulation, and probes of different tiers do not
// disturb each other (separate maps).
Probe& probe_for(const std::string& tier) {
  static std::map<std::string, std::unique_ptr<Probe>> probes;
  auto& p = probes[tier];
  if (!p) {
    sys::ProbeOptions options;
    options.tier = *sys::parse_tier_choice(tier);
    auto loaded = Probe::load(options);
    if (!loaded) {
      ADD_FAILURE() << "cannot load the probe at tier " << tier << ": " << loaded.error().message;
      std::abort();
    }
    p = std::move(*loaded);
  }
  return *p;
}

// What a listener's counters must settle at. Requests and closes are checked only where the tier can count them;
// where it cannot, they must be reported as unavailable, never as a number.
struct Expect {
  uint64_t accepts = 0;
  uint64_t requests = 0;
  uint64_t closes = 0;
  uint32_t active = 0;
  uint32_t backlog = 0;
  uint32_t idle = 0;
};

class ProbeTest : public ::testing::TestWithParam<std::tuple<std::string, Family>> {
 protected:
  std::string tier() const { return std::get<0>(GetParam()); }
  Family family() const { return std::get<1>(GetParam()); }
  Probe& probe() { return probe_for(tier()); }

  void TearDown() override {
    for (ListenerId id : registered_) (void)probe().remove(id);
  }

  ListenerId add(const SocketAddress& address) {
    auto id = probe().add(address);
    EXPECT_TRUE(id.ok()) << id.error().message;
    registered_.push_back(*id);
    return *id;
  }

  void remove(ListenerId id) {
    ASSERT_TRUE(probe().remove(id).ok());
    std::erase(registered_, id);
  }

  std::optional<ListenerSnapshot> snapshot(ListenerId id) {
    auto snaps = probe().read();
    EXPECT_TRUE(snaps.ok()) << snaps.error().message;
    if (!snaps) return std::nullopt;
    for (const auto& s : *snaps)
      if (s.id == id) return s;
    return std::nullopt;
  }

  bool requests_counted() const { return probe_for(tier()).tiers().requests != Tier::kUnavailable; }
  bool closes_counted() const {
    const auto& t = probe_for(tier()).tiers();
    return (family() == Family::kUnix ? t.unix_closes : t.tcp_closes) != Tier::kUnavailable;
  }

  static std::string describe(const ListenerSnapshot& s) {
    std::ostringstream o;
    o << "accepts=" << s.accepts << " requests=" << (s.requests ? std::to_string(*s.requests) : "n/a")
      << " closes=" << (s.closes ? std::to_string(*s.closes) : "n/a") << " active=" << s.active
      << " backlog=" << s.backlog << " idle=" << idle_of(s) << " listening=" << s.listening;
    return o.str();
  }

  // Idle kept-alive connections of the test server (which reads nothing after its answer): answered, nothing since.
  static uint32_t idle_of(const ListenerSnapshot& s) {
    return static_cast<uint32_t>(
        std::count_if(s.answered.begin(), s.answered.end(), [](const auto& a) { return a.received_since == 0; }));
  }

  bool matches(const ListenerSnapshot& s, const Expect& e) const {
    if (s.accepts != e.accepts || s.active != e.active + e.idle || s.backlog != e.backlog || idle_of(s) != e.idle)
      return false;
    if (requests_counted() ? s.requests != e.requests : s.requests.has_value()) return false;
    if (closes_counted() ? s.closes != e.closes : s.closes.has_value()) return false;
    return true;
  }

  // The counters reach `e` and stay there (a late over-count would fail the second look).
  void expect_settles(ListenerId id, const Expect& e) {
    std::optional<ListenerSnapshot> last;
    bool reached = eventually([&] {
      last = snapshot(id);
      return last && matches(*last, e);
    });
    ASSERT_TRUE(last.has_value()) << "listener " << id << " missing from read()";
    ASSERT_TRUE(reached) << "[" << tier() << "/" << to_string(family()) << "] got " << describe(*last)
                         << ", expected accepts=" << e.accepts << " requests=" << e.requests << " closes=" << e.closes
                         << " active=" << e.active << " backlog=" << e.backlog << " idle=" << e.idle;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    last = snapshot(id);
    ASSERT_TRUE(last && matches(*last, e)) << "counters moved after settling: " << describe(*last);
  }

  std::vector<ListenerId> registered_;
};

TEST_P(ProbeTest, CountsOneRequestPerConnection) {
  TestServer server(family());
  server.start_workers(2);
  ListenerId id = add(server.address());
  expect_settles(id, {});
  for (int i = 0; i < 5; ++i) {
    Client c(server.address());
    c.request();
  }
  expect_settles(id, {.accepts = 5, .requests = 5, .closes = 5});
}

TEST_P(ProbeTest, CountsEveryRequestOnKeptAliveConnections) {
  TestServer server(family());
  server.start_workers(3);
  ListenerId id = add(server.address());
  {
    std::vector<std::unique_ptr<Client>> clients;
    for (int i = 0; i < 3; ++i) clients.push_back(std::make_unique<Client>(server.address()));
    for (int cycle = 0; cycle < 4; ++cycle)
      for (auto& c : clients) c->request();
    // Answered, and nothing asked since: idle, held open by the clients, not work in flight. Where sends are not
    // seen (the syscall tier), an open connection is all there is to go by.
    if (requests_counted())
      expect_settles(id, {.accepts = 3, .requests = 12, .idle = 3});
    else
      expect_settles(id, {.accepts = 3, .requests = 12, .active = 3});
  }
  expect_settles(id, {.accepts = 3, .requests = 12, .closes = 3});
}

// A request sent on a kept-alive connection is in flight from its first byte until its answer, then idle again; the
// client closing an idle connection later is not activity (the web server's keepalive_timeout is not the pool's).
TEST_P(ProbeTest, KeptAliveConnectionsAreInFlightOnlyWhileARequestIs) {
  if (!requests_counted()) GTEST_SKIP() << "tier " << tier() << " sees no sends";
  TestServer server(family());
  server.start_workers(1);
  ListenerId id = add(server.address());
  Client c(server.address());
  c.request();
  expect_settles(id, {.accepts = 1, .requests = 1, .idle = 1});
  uint64_t answered = snapshot(id)->last_activity_ns;
  c.begin_request();  // the worker has the first bytes of a request and waits for the rest
  expect_settles(id, {.accepts = 1, .requests = 1, .active = 1});
  c.end_request();
  expect_settles(id, {.accepts = 1, .requests = 2, .idle = 1});
  answered = snapshot(id)->last_activity_ns;
  ASSERT_GT(answered, 0u);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  c.close();
  expect_settles(id, {.accepts = 1, .requests = 2, .closes = closes_counted() ? 1u : 0u});
  EXPECT_EQ(snapshot(id)->last_activity_ns, answered)
      << "the close of an idle kept-alive connection moved the activity";
}

TEST_P(ProbeTest, ActiveAndBacklogRiseAndFall) {
  TestServer server(family());
  ListenerId id = add(server.address());
  // No workers yet: connections wait in the backlog, none is accepted.
  Client a(server.address()), b(server.address());
  expect_settles(id, {.backlog = 2});
  // Each worker takes one connection and holds it (the clients send nothing and keep it open).
  server.start_workers(1);
  expect_settles(id, {.accepts = 1, .active = 1, .backlog = 1});
  server.start_workers(1);
  expect_settles(id, {.accepts = 2, .active = 2, .backlog = 0});
  a.close();
  b.close();
  expect_settles(id, {.accepts = 2, .closes = 2});
}

TEST_P(ProbeTest, LastActivityFollowsRequests) {
  TestServer server(family());
  server.start_workers(2);
  ListenerId id = add(server.address());
  auto before = snapshot(id);
  ASSERT_TRUE(before);
  EXPECT_EQ(before->last_activity_ns, 0u) << "no activity yet";
  uint64_t t0 = monotonic_ns();
  Client c(server.address());
  c.request();
  uint64_t t1 = monotonic_ns();
  ASSERT_TRUE(eventually([&] { return snapshot(id)->last_activity_ns >= t0; }));
  uint64_t first = snapshot(id)->last_activity_ns;
  EXPECT_LE(first, t1 + 50'000'000) << "last_activity is later than the request";
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_EQ(snapshot(id)->last_activity_ns, first) << "last_activity moved without activity";
  uint64_t t2 = monotonic_ns();
  if (requests_counted()) {
    c.request();
    ASSERT_TRUE(eventually([&] { return snapshot(id)->last_activity_ns >= t2; })) << "a second request did not move it";
  } else {
    // Without request counting only accepts (and TCP closes) are seen: a new connection must move it.
    Client(server.address()).request();
    ASSERT_TRUE(eventually([&] { return snapshot(id)->last_activity_ns >= t2; })) << "a new connection did not move it";
  }
}

// To time a wake: the first accept or request after rearm() is dated, later ones do not move the date.
TEST_P(ProbeTest, FirstUseIsDatedUntilRearmed) {
  TestServer server(family());
  server.start_workers(1);
  ListenerId id = add(server.address());
  EXPECT_EQ(snapshot(id)->first_use_ns, 0u);
  uint64_t t0 = monotonic_ns();
  Client(server.address()).request();
  ASSERT_TRUE(eventually([&] { return snapshot(id)->first_use_ns != 0; }));
  uint64_t first = snapshot(id)->first_use_ns;
  EXPECT_GE(first, t0);
  Client(server.address()).request();
  ASSERT_TRUE(eventually([&] { return snapshot(id)->accepts == 2; }));
  EXPECT_EQ(snapshot(id)->first_use_ns, first) << "a second use moved the first-use date";
  probe().rearm(id);
  EXPECT_EQ(snapshot(id)->first_use_ns, 0u);
  uint64_t t1 = monotonic_ns();
  Client(server.address()).request();
  ASSERT_TRUE(eventually([&] { return snapshot(id)->first_use_ns >= t1; }));
}

// To time a wake as its visitor sees it: the first arrival (where the tier sees arrivals: TCP on every tier, unix on
// sock) and the first response's start (where it counts requests) after rearm() are dated, later ones do not move them.
TEST_P(ProbeTest, FirstArrivalAndResponseAreDatedUntilRearmed) {
  const bool arrivals = family() != Family::kUnix || probe_for(tier()).tiers().accepts == Tier::kSock;
  TestServer server(family());
  server.start_workers(1);
  ListenerId id = add(server.address());
  uint64_t t0 = monotonic_ns();
  Client(server.address()).request();
  ASSERT_TRUE(eventually([&] { return snapshot(id)->first_use_ns != 0; }));
  auto waited = [&](const char* what, auto field, bool expected, uint64_t after) {
    if (!expected) {
      EXPECT_EQ(field(*snapshot(id)), 0u) << what << ": this tier cannot see it";
      return uint64_t{0};
    }
    EXPECT_TRUE(eventually([&] { return field(*snapshot(id)) != 0; })) << what << " never dated";
    uint64_t v = field(*snapshot(id));
    EXPECT_GE(v, after) << what;
    return v;
  };
  auto arrival_of = [](const ListenerSnapshot& s) { return s.first_arrival_ns; };
  auto response_of = [](const ListenerSnapshot& s) { return s.first_response_ns; };
  uint64_t arrived = waited("first arrival", arrival_of, arrivals, t0);
  uint64_t responded = waited("first response", response_of, requests_counted(), t0);
  if (arrivals) EXPECT_LE(arrived, snapshot(id)->first_use_ns) << "arrived after its accept";
  if (requests_counted()) EXPECT_GE(responded, snapshot(id)->first_use_ns) << "answered before its request began";
  Client(server.address()).request();
  ASSERT_TRUE(eventually([&] { return snapshot(id)->accepts == 2; }));
  EXPECT_EQ(snapshot(id)->first_arrival_ns, arrived) << "a second connection moved the first arrival";
  EXPECT_EQ(snapshot(id)->first_response_ns, responded) << "a second response moved the first response";
  probe().rearm(id);
  EXPECT_EQ(snapshot(id)->first_arrival_ns, 0u);
  EXPECT_EQ(snapshot(id)->first_response_ns, 0u);
  uint64_t t1 = monotonic_ns();
  Client(server.address()).request();
  waited("first arrival after rearm", arrival_of, arrivals, t1);
  waited("first response after rearm", response_of, requests_counted(), t1);
}

TEST_P(ProbeTest, IgnoresUnregisteredSocketsAndKeepsRegisteredOnesApart) {
  TestServer counted(family()), other(family()), unregistered(family());
  counted.start_workers(1);
  other.start_workers(1);
  unregistered.start_workers(1);
  ListenerId a = add(counted.address());
  ListenerId b = add(other.address());
  for (int i = 0; i < 4; ++i) Client(unregistered.address()).request();
  for (int i = 0; i < 2; ++i) Client(counted.address()).request();
  Client keep(other.address());
  for (int i = 0; i < 3; ++i) keep.request();
  expect_settles(a, {.accepts = 2, .requests = 2, .closes = 2});
  if (requests_counted())
    expect_settles(b, {.accepts = 1, .requests = 3, .idle = 1});
  else
    expect_settles(b, {.accepts = 1, .requests = 3, .active = 1});
  auto snaps = probe().read();
  ASSERT_TRUE(snaps.ok());
  for (const auto& s : *snaps) EXPECT_NE(s.address, unregistered.address()) << "unregistered socket is listed";
}

TEST_P(ProbeTest, RegistersManyListenersInOneCall) {
  TestServer a(family()), b(family()), c(family());
  a.start_workers(1);
  b.start_workers(1);
  c.start_workers(1);
  std::string missing_path = "/run/idlepool-no-such-" + std::to_string(getpid()) + ".sock";
  auto ids = probe().add_many({a.address(), *parse_socket_address(missing_path), b.address(), c.address()});
  ASSERT_EQ(ids.size(), 4u);
  ASSERT_TRUE(ids[0].ok() && ids[2].ok() && ids[3].ok());
  EXPECT_FALSE(ids[1].ok()) << "an address without a listener fails alone";
  EXPECT_NE(ids[1].error().message.find(missing_path), std::string::npos) << ids[1].error().message;
  for (size_t i : {size_t{0}, size_t{2}, size_t{3}}) registered_.push_back(*ids[i]);
  Client(a.address()).request();
  for (int i = 0; i < 3; ++i) Client(c.address()).request();
  expect_settles(*ids[0], {.accepts = 1, .requests = 1, .closes = 1});
  expect_settles(*ids[2], {});
  expect_settles(*ids[3], {.accepts = 3, .requests = 3, .closes = 3});
}

TEST_P(ProbeTest, UnregisteringStopsCounting) {
  TestServer server(family());
  server.start_workers(1);
  ListenerId id = add(server.address());
  Client(server.address()).request();
  expect_settles(id, {.accepts = 1, .requests = 1, .closes = 1});
  remove(id);
  auto snaps = probe().read();
  ASSERT_TRUE(snaps.ok());
  for (const auto& s : *snaps) EXPECT_NE(s.id, id) << "removed listener still listed";
  for (int i = 0; i < 3; ++i) {
    Client c(server.address());
    c.request();
    c.hang_up();  // closed on both sides before registering again, else they would be adopted as open connections
  }
  // Registered again, it starts from zero: what happened in between was not counted anywhere.
  ListenerId again = add(server.address());
  expect_settles(again, {});
  Client(server.address()).request();
  expect_settles(again, {.accepts = 1, .requests = 1, .closes = 1});
}

TEST_P(ProbeTest, FollowsAListenerReplacedAtTheSameAddress) {
  TestServer server(family());
  server.start_workers(1);
  ListenerId id = add(server.address());
  Client(server.address()).request();
  Client(server.address()).request();
  expect_settles(id, {.accepts = 2, .requests = 2, .closes = 2});
  uint64_t old_cookie = snapshot(id)->cookie;
  // The socket unit restarted: a new socket at the same address; the old workers die with the old socket.
  server.stop_workers();
  server.close_listener();
  ASSERT_TRUE(eventually([&] { return !snapshot(id)->listening; })) << "a closed listener still reads as listening";
  server.relisten();
  server.start_workers(1);
  // The new socket is taken up at the next read (idlepoold reads when systemd reports the socket unit restarted).
  ASSERT_TRUE(eventually([&] { return snapshot(id)->listening; }));
  Client(server.address()).request();
  expect_settles(id, {.accepts = 3, .requests = 3, .closes = 3});
  EXPECT_NE(snapshot(id)->cookie, old_cookie);
}

// idlepoold starting on a busy host: the pool's workers are already blocked in accept() when the probe is attached.
// An exit hook never sees those accept() calls return; the probe must still count each connection exactly once.
TEST_P(ProbeTest, CountsAcceptsThatBeganBeforeTheProbeWasLoaded) {
  TestServer server(family());
  server.start_workers(3);
  sys::ProbeOptions options;
  options.tier = *sys::parse_tier_choice(tier());
  auto fresh = Probe::load(options);
  ASSERT_TRUE(fresh.ok()) << fresh.error().message;
  auto id = (*fresh)->add(server.address());
  ASSERT_TRUE(id.ok()) << id.error().message;
  {
    Client a(server.address()), b(server.address());
    a.request();
    b.request();
    b.request();
    Client(server.address()).request();  // three workers, three connections, all accepted by blocked calls
    Client(server.address()).request();  // and one accepted by a call that began after the probe was loaded
  }
  auto settled = [&](const ListenerSnapshot& s) {
    return s.accepts == 4 && (!requests_counted() || s.requests == 5u) && s.active == 0 && s.backlog == 0;
  };
  std::optional<ListenerSnapshot> last;
  bool ok = eventually([&] {
    auto snaps = (*fresh)->read();
    if (!snaps || snaps->empty()) return false;
    last = snaps->front();
    return settled(*last);
  });
  ASSERT_TRUE(last.has_value());
  EXPECT_TRUE(ok) << "[" << tier() << "/" << to_string(family()) << "] got " << describe(*last)
                  << ", expected accepts=4 requests=5 active=0";
}

std::vector<std::string> tiers_under_test() { return split(env_or("IDLEPOOL_TEST_TIERS", "auto,syscall")); }

INSTANTIATE_TEST_SUITE_P(Kernel, ProbeTest,
                         ::testing::Combine(::testing::ValuesIn(tiers_under_test()),
                                            ::testing::Values(Family::kTcp4, Family::kTcp6, Family::kUnix)),
                         [](const auto& param_info) {
                           return std::get<0>(param_info.param) + "_" + to_string(std::get<1>(param_info.param));
                         });

// ---- tier selection and bad input ------------------------------------------------------------------------------

TEST(ProbeLoad, AutoPicksTheExpectedTierAndSaysWhyCheaperOnesFailed) {
  std::string expected = env_or("IDLEPOOL_EXPECT_AUTO_TIER", "");
  ASSERT_FALSE(expected.empty()) << "IDLEPOOL_EXPECT_AUTO_TIER is not set: the runner must say what this kernel allows";
  const auto& t = probe_for("auto").tiers();
  EXPECT_EQ(to_string(t.loaded), expected);
  EXPECT_EQ(to_string(t.accepts), expected);
  if (expected != "fentry") {
    ASSERT_FALSE(t.passed_over.empty());
    EXPECT_EQ(t.passed_over[0].rfind("fentry: ", 0), 0u) << t.passed_over[0];
  } else {
    EXPECT_TRUE(t.passed_over.empty());
  }
}

TEST(ProbeLoad, RefusesTiersTheKernelLacksWithAReason) {
  for (const auto& tier : split(env_or("IDLEPOOL_UNAVAILABLE_TIERS", ""))) {
    sys::ProbeOptions options;
    options.tier = *sys::parse_tier_choice(tier);
    auto p = Probe::load(options);
    ASSERT_FALSE(p.ok()) << "tier " << tier << " loaded, but this kernel is said not to allow it";
    EXPECT_NE(p.error().message.find(tier + ": "), std::string::npos) << p.error().message;
    std::cout << "[ info ] tier " << tier << " refused: " << p.error().message << "\n";
  }
}

TEST(ProbeLoad, MissingBtfIsNamed) {
  sys::ProbeOptions options;
  options.btf_path = "/nonexistent/vmlinux";
  auto p = Probe::load(options);
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.error().message.find("kernel BTF not found at /nonexistent/vmlinux"), std::string::npos)
      << p.error().message;
}

TEST(ProbeLoad, GarbageBtfIsNamed) {
  char path[] = "/tmp/idlepool-btf-XXXXXX";
  int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(write(fd, "this is not BTF at all", 22), 22);
  close(fd);
  sys::ProbeOptions options;
  options.btf_path = path;
  auto p = Probe::load(options);
  unlink(path);
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.error().message.find("cannot read kernel BTF from " + std::string(path)), std::string::npos)
      << p.error().message;
}

TEST(ProbeLoad, WithoutPrivilegesSaysWhatItNeeds) {
  int pipefd[2];
  ASSERT_EQ(pipe(pipefd), 0);
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    // Drop every capability, as an unprivileged user would have none.
    __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
    __user_cap_data_struct data[2] = {};
    if (syscall(SYS_capset, &header, data) != 0) _exit(3);
    auto p = Probe::load({});
    std::string msg = p.ok() ? "LOADED" : p.error().message;
    (void)!write(pipefd[1], msg.data(), msg.size());
    _exit(0);
  }
  close(pipefd[1]);
  std::string msg;
  char buf[512];
  for (ssize_t n; (n = read(pipefd[0], buf, sizeof(buf))) > 0;) msg.append(buf, static_cast<size_t>(n));
  close(pipefd[0]);
  int status = 0;
  waitpid(child, &status, 0);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "child status " << status;
  EXPECT_NE(msg.find("needs root"), std::string::npos) << msg;
}

TEST(ProbeRegister, AddressWithoutAListenerIsNamed) {
  Probe& p = probe_for("auto");
  // A port that was just free: bind, read it, close.
  std::string free_port;
  {
    TestServer s(Family::kTcp4);
    free_port = std::to_string(s.address().port);
  }
  auto r = p.add(*parse_socket_address("127.0.0.1:" + free_port));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("no listening socket at 127.0.0.1:" + free_port), std::string::npos)
      << r.error().message;
  auto u = p.add(*parse_socket_address("/run/idlepool-no-such.sock"));
  ASSERT_FALSE(u.ok());
  EXPECT_NE(u.error().message.find("no listening socket at /run/idlepool-no-such.sock"), std::string::npos)
      << u.error().message;
  auto rm = p.remove(987654);
  ASSERT_FALSE(rm.ok());
  EXPECT_NE(rm.error().message.find("987654"), std::string::npos);
}

TEST(ProbeRegister, TcpAddressIsServedByAWildcardListener) {
  Probe& p = probe_for("auto");
  // Like systemd's ListenStream=PORT, which binds [::]:PORT dual-stack and serves 127.0.0.1:PORT.
  TestServer probe_port(Family::kTcp4);
  uint16_t port = probe_port.address().port;
  probe_port.close_listener();
  int fd = socket(AF_INET6, SOCK_STREAM, 0);
  int zero = 0, one = 1;
  setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in6 sin6{};
  sin6.sin6_family = AF_INET6;
  sin6.sin6_addr = in6addr_any;
  sin6.sin6_port = htons(port);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&sin6), sizeof(sin6)), 0);
  ASSERT_EQ(listen(fd, 16), 0);
  auto id = p.add(*parse_socket_address("127.0.0.1:" + std::to_string(port)));
  ASSERT_TRUE(id.ok()) << id.error().message;
  {
    Client c(*parse_socket_address("127.0.0.1:" + std::to_string(port)));
    sockaddr_storage ss{};
    socklen_t len = sizeof(ss);
    int conn = accept(fd, reinterpret_cast<sockaddr*>(&ss), &len);
    ASSERT_GE(conn, 0);
    close(conn);
  }
  bool ok = eventually([&] {
    auto snaps = p.read();
    for (const auto& s : *snaps)
      if (s.id == *id) return s.accepts == 1 && s.bound.to_string() == "[::]:" + std::to_string(port);
    return false;
  });
  EXPECT_TRUE(ok);
  (void)p.remove(*id);
  close(fd);
}

// A site user's impostor: in a user and mount namespace of its own (unprivileged on Debian), `nobody` mounts a tmpfs
// over a pool socket's directory, binds a socket of the same name there and serves it, making request cycles on it
// from its own namespace. The probe must never take it for the pool's: a pool that looked idle while busy would be
// stopped with work in flight, and one that looked busy would never be.
class Impostor {
 public:
  explicit Impostor(const std::string& path) {
    int up[2], go[2];
    if (pipe(up) != 0 || pipe(go) != 0) std::abort();
    pid_ = fork();
    if (pid_ == 0) {
      ::close(up[0]);
      ::close(go[1]);
      int rc = serve(path, up[1], go[0]);
      char status = rc == 0 ? 'd' : 'e';
      (void)!::write(up[1], &status, 1);
      _exit(rc);
    }
    ::close(up[1]);
    ::close(go[0]);
    up_ = up[0];
    go_ = go[1];
    char c = 0;
    ok_ = ::read(up_, &c, 1) == 1 && c == 'k';
    if (!ok_) {
      int status = 0;
      ::waitpid(pid_, &status, 0);
      failure_ = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    }
  }
  ~Impostor() {
    ::close(go_);
    ::close(up_);
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
  }
  bool ok() const { return ok_; }
  int failure() const { return failure_; }  // the step that failed (see serve()), when not ok()
  // Makes `n` request cycles on its own socket, in its own namespace; true when they were all made.
  bool cycles(int n) {
    char c = static_cast<char>(n);
    if (::write(go_, &c, 1) != 1) return false;
    return ::read(up_, &c, 1) == 1 && c == 'd';
  }

 private:
  // As nobody, in a user and mount namespace of its own: a tmpfs over the socket's directory, a socket of the same
  // name bound there. 'k' when it listens, then `n` request cycles on it when asked.
  static int serve(const std::string& path, int up, int go) {
    if (setgroups(0, nullptr) != 0 || setgid(65534) != 0 || setuid(65534) != 0) return 1;
    prctl(PR_SET_DUMPABLE, 1);  // its own /proc/self files again (a setuid makes them root's), for the id maps
    if (unshare(CLONE_NEWUSER | CLONE_NEWNS) != 0) return 2;
    // Root inside, nobody outside (what `unshare -r` does): files it creates are nobody's.
    auto write_file = [](const char* file, const char* text) {
      int fd = ::open(file, O_WRONLY);
      bool ok = fd >= 0 && ::write(fd, text, std::strlen(text)) == static_cast<ssize_t>(std::strlen(text));
      if (fd >= 0) ::close(fd);
      return ok;
    };
    if (!write_file("/proc/self/setgroups", "deny") || !write_file("/proc/self/uid_map", "0 65534 1") ||
        !write_file("/proc/self/gid_map", "0 65534 1"))
      return 9;
    std::string dir = path.substr(0, path.rfind('/'));
    if (mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) return 3;
    if (mount("tmpfs", dir.c_str(), "tmpfs", 0, nullptr) != 0) return 4;
    int l = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un sun{};
    sun.sun_family = AF_UNIX;
    std::snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path.c_str());
    if (::bind(l, reinterpret_cast<sockaddr*>(&sun), sizeof(sun)) != 0 || ::listen(l, 16) != 0) return 5;
    (void)!::write(up, "k", 1);
    char n = 0;
    if (::read(go, &n, 1) != 1) return 0;
    for (int i = 0; i < n; ++i) {  // a connection of its own, accepted and answered by itself
      int c = ::socket(AF_UNIX, SOCK_STREAM, 0);
      if (::connect(c, reinterpret_cast<sockaddr*>(&sun), sizeof(sun)) != 0) return 6;
      int a = ::accept(l, nullptr, nullptr);
      char buf[8];
      if (::write(c, "REQ\n", 4) != 4 || ::read(a, buf, sizeof(buf)) <= 0) return 7;
      if (::write(a, "RESP\n", 5) != 5 || ::read(c, buf, sizeof(buf)) <= 0) return 8;
      ::close(a);
      ::close(c);
    }
    return 0;
  }
  pid_t pid_ = -1;
  int up_ = -1, go_ = -1;
  bool ok_ = false;
  int failure_ = 0;
};

TEST(ProbeTrust, ASameNamedSocketInAnotherMountNamespaceIsNotThePools) {
  Probe& p = probe_for("auto");
  // Alone, the impostor's socket is no pool's: nothing listens at that path in this mount namespace.
  char tmpl[] = "/tmp/idlepool-trust-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  ::chmod(tmpl, 0755);
  std::string path = std::string(tmpl) + "/pool.sock";
  {
    Impostor alone(path);
    ASSERT_TRUE(alone.ok()) << "nobody could not bind a socket in a namespace of its own here (step " << alone.failure()
                            << ")";
    auto id = p.add(*parse_socket_address(path));
    EXPECT_FALSE(id.ok()) << "the probe took a socket another mount namespace bound for the pool's";
    if (id) (void)p.remove(*id);
  }
  ::rmdir(tmpl);
}

TEST(ProbeTrust, ThePoolsSocketIsCountedWhateverAnImpostorDoes) {
  Probe& p = probe_for("auto");
  TestServer server(Family::kUnix);
  ::chmod(server.address().path.substr(0, server.address().path.rfind('/')).c_str(), 0755);
  Impostor impostor(server.address().path);  // same name, bound while the pool's socket is there
  ASSERT_TRUE(impostor.ok()) << "step " << impostor.failure();
  server.start_workers(1);
  auto id = p.add(server.address());
  ASSERT_TRUE(id.ok()) << id.error().message;
  for (int i = 0; i < 3; ++i) Client(server.address()).request();
  ASSERT_TRUE(impostor.cycles(5)) << "the impostor could not make its request cycles";
  bool settled = eventually([&] {
    auto snaps = p.read();
    for (const auto& s : *snaps)
      if (s.id == *id) return s.accepts == 3 && s.active == 0 && s.backlog == 0;
    return false;
  });
  auto snaps = p.read();
  for (const auto& s : *snaps)
    if (s.id == *id) {
      EXPECT_TRUE(settled) << "accepts " << s.accepts << " active " << s.active << " backlog " << s.backlog;
      if (s.requests) {
        EXPECT_EQ(*s.requests, 3u) << "the impostor's 5 cycles were counted as the pool's";
      }
    }
  (void)p.remove(*id);
}

}  // namespace
}  // namespace idlepool::testing
