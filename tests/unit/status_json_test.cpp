// The status model as JSON, both ways: what the daemon encodes idlepoolctl decodes into the same typed model, and a
// malformed answer is refused with the field it is about, never half-read.
#include "idlepool/wire/status_json.h"

#include <gtest/gtest.h>

namespace idlepool::wire {
namespace {

using namespace std::chrono_literals;

status::Model model() {
  status::Model m;
  m.now = std::chrono::duration_cast<MonoTime>(5000s);
  m.summary = "1 pools: 1 running";
  m.daemon.version = "9.9";
  m.daemon.probe = {"sock", "sock", "sock", "unavailable"};
  m.daemon.processes = {10, 1, 2, 3, 0};
  m.daemon.discovering = true;
  m.daemon.discovery_done = 64;
  m.daemon.discovery_total = 1000;
  status::Pool p;
  p.unit = "php-fpm@a.service";
  p.kind = "php-fpm";
  p.active_state = "active";
  p.sub_state = "running";
  p.running = true;
  p.sockets.push_back({"php-fpm@a.socket", "/run/php/a.sock", true, status::SocketCounters{7, 9, 1, 2}});
  p.sockets.push_back({"php-fpm@a-tcp.socket", "127.0.0.1:9000", false, std::nullopt});
  p.processes = status::Processes{3, 2, 4711};
  p.decision = wait_because(Rule::kInFlight, m.now + 5s);
  p.decision.active = 1;
  p.decision.queued = 2;
  p.policy.idle_timeout = 60s;
  p.policy.pinned = true;
  p.can_wake = true;
  p.unsafe = "something";
  p.warnings = {"w1", "w2"};
  p.last_activity = m.now - 12s;
  p.stops = {4, 1};
  p.wakes = 3;
  p.stalls = {1, 0, 2};
  p.memory_bytes = 123456;
  p.memory_released_bytes = 999;
  p.wake_latency.observe(0.3);
  p.visitor_wake.observe(0.8);
  p.visitor_wake.observe(7.0);
  p.slowest_visitor_wake = 7.0;
  p.visit_periods = {3600, 3590};
  p.policy.adaptive.on = true;
  p.policy.adaptive.prewarm = true;
  p.window.value = 128s;
  p.window.reason = WindowReason::kLearnt;
  p.window.samples = 23;
  p.window.p50 = 128s;
  p.window.p99 = 4096s;
  p.window.cold_share = 0.25;
  p.prewarms = 5;
  p.prewarm_hits = 4;
  p.prewarm_at = m.now + 30s;
  m.pools.push_back(p);
  return m;
}

TEST(StatusJson, ModelRoundTrips) {
  auto m = model();
  auto back = status_from_json(status_to_json(m));
  ASSERT_TRUE(back.ok()) << back.error().message;
  EXPECT_EQ(back->now, m.now);
  EXPECT_EQ(back->summary, m.summary);
  EXPECT_EQ(back->daemon.probe.unix_closes, "unavailable");
  EXPECT_EQ(back->daemon.discovery_total, 1000u);
  ASSERT_EQ(back->pools.size(), 1u);
  const auto& a = m.pools[0];
  const auto& b = back->pools[0];
  EXPECT_EQ(b.unit, a.unit);
  EXPECT_EQ(b.kind, "php-fpm");
  EXPECT_EQ(b.decision.kind, Decision::Kind::kWait);
  EXPECT_EQ(b.decision.rule, Rule::kInFlight);
  EXPECT_EQ(b.decision.at, a.decision.at);
  EXPECT_EQ(describe(b.decision, m.now), "in flight: 1 active, 2 queued");
  EXPECT_EQ(b.policy.idle_timeout, 60s);
  EXPECT_TRUE(b.policy.pinned);
  EXPECT_EQ(b.unsafe, a.unsafe);
  EXPECT_EQ(b.warnings, a.warnings);
  EXPECT_EQ(b.last_activity, a.last_activity);
  EXPECT_EQ(b.stops, a.stops);
  EXPECT_EQ(b.stalls, a.stalls);
  EXPECT_EQ(b.memory_bytes, a.memory_bytes);
  EXPECT_EQ(b.wake_latency.buckets, a.wake_latency.buckets);
  EXPECT_EQ(b.visitor_wake.buckets, a.visitor_wake.buckets);
  EXPECT_EQ(b.visitor_wake.count, 2u);
  EXPECT_EQ(b.slowest_visitor_wake, 7.0);
  EXPECT_EQ(b.visit_periods, (std::vector<uint32_t>{3600, 3590}));
  EXPECT_TRUE(b.policy.adaptive.on);
  EXPECT_TRUE(b.policy.adaptive.prewarm);
  EXPECT_EQ(describe(b.window), describe(a.window));
  EXPECT_EQ(describe(b.window), "128s (learnt from 23 silences: median 128s, p90 -, p99 4096s; 25% outlast it)");
  EXPECT_EQ(b.prewarms, 5u);
  EXPECT_EQ(b.prewarm_hits, 4u);
  EXPECT_EQ(b.prewarm_at, a.prewarm_at);
  ASSERT_EQ(b.sockets.size(), 2u);
  EXPECT_EQ(b.sockets[0].counters->requests, 9u);
  EXPECT_EQ(b.sockets[0].counters->backlog, 2u);
  EXPECT_FALSE(b.sockets[1].counters.has_value()) << "a socket the probe does not watch has no counters";
  ASSERT_TRUE(b.processes);
  EXPECT_EQ(b.processes->main_pid, 4711);
}

TEST(StatusJson, DerivedFiguresForPeopleAndScripts) {
  auto j = status_to_json(model());
  const auto& p = j["pools"][0];
  EXPECT_EQ(j["version"], status::kVersion);
  EXPECT_EQ(p["rule"], "in-flight");
  EXPECT_EQ(p["decision_reason"], "in flight: 1 active, 2 queued");
  EXPECT_EQ(p["not_stopping_because"], "in flight: 1 active, 2 queued");
  EXPECT_DOUBLE_EQ(p["idle_seconds"].get<double>(), 12.0);
  EXPECT_TRUE(p["stops_in_seconds"].is_null()) << "nothing is planned while work is in flight";
  EXPECT_EQ(p["stops"]["idle"], 4);
  EXPECT_EQ(p["stalls"]["nudge-failed"], 0);
  EXPECT_EQ(p["accepts"], 7);
  EXPECT_TRUE(p["requests"].is_null()) << "one socket cannot count them";
}

TEST(StatusJson, ShowCarriesItsOwnClock) {
  auto m = model();
  MonoTime now{0};
  auto p = pool_from_json(pool_to_json(m.pools[0], m.now), &now);
  ASSERT_TRUE(p.ok()) << p.error().message;
  EXPECT_EQ(now, m.now);
  EXPECT_EQ(p->unit, "php-fpm@a.service");
}

TEST(StatusJson, MalformedAnswersNameTheField) {
  struct Case {
    const char* name;
    void (*edit)(nlohmann::json&);
    const char* says;
  };
  const Case cases[] = {
      {"older version", [](nlohmann::json& j) { j["version"] = 1; }, "version 1"},
      {"pools not a list", [](nlohmann::json& j) { j["pools"] = "x"; }, "pools: not an array"},
      {"unknown rule", [](nlohmann::json& j) { j["pools"][0]["rule"] = "because"; }, "rule: unknown rule 'because'"},
      {"negative count", [](nlohmann::json& j) { j["pools"][0]["wakes"] = -1; }, "php-fpm@a.service.wakes"},
      {"socket counter", [](nlohmann::json& j) { j["pools"][0]["sockets"][0]["accepts"] = "7"; },
       "php-fpm@a.service.sockets[0].accepts"},
      {"unknown stop cause", [](nlohmann::json& j) { j["pools"][0]["stops"]["bored"] = 1; }, "unknown key 'bored'"},
      {"buckets",
       [](nlohmann::json& j) {
         j["pools"][0]["wake_latency"]["buckets"] = {1, 2};
       },
       "buckets"},
      {"missing field", [](nlohmann::json& j) { j["pools"][0].erase("running"); }, "running: missing"},
      {"window reason", [](nlohmann::json& j) { j["pools"][0]["idle_window"]["reason"] = "whim"; },
       "idle_window.reason: unknown reason 'whim'"},
      {"not an object", [](nlohmann::json& j) { j["pools"][0] = 7; }, "not an object"},
      {"visitor buckets", [](nlohmann::json& j) { j["pools"][0]["visitor_wake"]["buckets"] = {-1}; },
       "visitor_wake.buckets"},
      {"slowest", [](nlohmann::json& j) { j["pools"][0]["slowest_visitor_wake_seconds"] = "slow"; },
       "slowest_visitor_wake_seconds: not a number or null"},
      {"periods too many", [](nlohmann::json& j) { j["pools"][0]["visit_periods_seconds"] = std::vector<int>(9, 60); },
       "visit_periods_seconds: not an array of at most 8 seconds"},
      {"periods negative",
       [](nlohmann::json& j) {
         j["pools"][0]["visit_periods_seconds"] = {60, -1};
       },
       "visit_periods_seconds: holds something that is not seconds"},
      {"daemon", [](nlohmann::json& j) { j["daemon"]["bus_errors"] = true; }, "daemon.bus_errors"},
  };
  for (const auto& c : cases) {
    auto j = status_to_json(model());
    c.edit(j);
    auto r = status_from_json(j);
    ASSERT_FALSE(r.ok()) << c.name;
    EXPECT_NE(r.error().message.find(c.says), std::string::npos) << c.name << ": " << r.error().message;
  }
  EXPECT_FALSE(status_from_json(nlohmann::json::array()).ok());
  EXPECT_FALSE(status_from_json(nlohmann::json()).ok());
  EXPECT_FALSE(pool_from_json(nlohmann::json("x")).ok());
}

TEST(StatusJson, AuditsRoundTrip) {
  std::vector<status::Audit> audits = {{"a.service", {}, {"slow stop"}}, {"b.service", {"unsafe"}, {}}};
  auto j = audits_to_json(audits);
  EXPECT_EQ(j["ok"], false);
  auto back = audits_from_json(j);
  ASSERT_TRUE(back.ok()) << back.error().message;
  ASSERT_EQ(back->size(), 2u);
  EXPECT_TRUE((*back)[0].ok());
  EXPECT_EQ((*back)[1].problems, std::vector<std::string>{"unsafe"});
  j["pools"][1]["problems"] = {1};
  EXPECT_FALSE(audits_from_json(j).ok());
}

}  // namespace
}  // namespace idlepool::wire
