// The metric families built from the status model: names, labels, values, histogram buckets.
#include "metrics.h"

#include <gtest/gtest.h>
#include <prometheus/text_serializer.h>

namespace idlepool::metrics {
namespace {

using namespace std::chrono_literals;

status::Model populated() {
  status::Model s;
  s.daemon.version = "0.1.0";
  s.now = std::chrono::duration_cast<MonoTime>(1000s);
  s.daemon.probe = {"sock", "sock", "sock", "unavailable"};
  s.daemon.deferred_rate_limit = 2;
  s.daemon.bus_errors = 1;
  status::Pool p;
  p.unit = "php-fpm@a.service";
  p.active_state = "active";
  p.running = true;
  p.can_wake = true;
  status::Socket sock;
  sock.unit = "php-fpm@a.socket";
  sock.address = "/run/php/a.sock";
  sock.listening = true;
  sock.counters = status::SocketCounters{7, 9, 1, 0};
  p.sockets.push_back(sock);
  p.processes = status::Processes{3, 2, 100};
  p.last_activity = s.now - 30s;
  p.decision = wait_because(Rule::kIdleTimeout, s.now + 270s);
  p.decision.since = s.now - 30s;
  p.decision.limit = 300s;
  p.stops[static_cast<size_t>(status::StopCause::kIdle)] = 4;
  p.stops[static_cast<size_t>(status::StopCause::kOperator)] = 1;
  p.wakes = 3;
  p.wake_latency.observe(0.3);
  p.wake_latency.observe(2.0);
  p.visitor_wake.observe(3.0);
  p.slowest_visitor_wake = 3.0;
  p.memory_bytes = 16u << 20;
  p.memory_released_bytes = 64u << 20;
  s.pools.push_back(p);
  status::Pool q;  // a stopped pool whose tier cannot count requests
  q.unit = "php-fpm@b.service";
  q.active_state = "inactive";
  status::Socket qs;
  qs.unit = "php-fpm@b.socket";
  qs.address = "127.0.0.1:8888";  // not listening: its socket unit failed
  qs.counters = status::SocketCounters{2, std::nullopt, 0, 0};
  q.sockets.push_back(qs);
  q.decision = wait_because(Rule::kInFlight, s.now + 5s);  // planned stops only show while waiting for idleness
  s.pools.push_back(q);
  return s;
}

TEST(Metrics, FamiliesCarryTheModel) {
  std::string text = prometheus::TextSerializer().Serialize(build(populated()));
  auto has = [&](const std::string& line) { return text.find(line + "\n") != std::string::npos; };
  EXPECT_TRUE(has("idlepool_build_info{version=\"0.1.0\"} 1")) << text;
  EXPECT_TRUE(has("idlepool_pool_accepts_total{pool=\"php-fpm@a.service\",socket=\"/run/php/a.sock\"} 7"));
  EXPECT_TRUE(has("idlepool_pool_requests_total{pool=\"php-fpm@a.service\",socket=\"/run/php/a.sock\"} 9"));
  EXPECT_EQ(text.find("idlepool_pool_requests_total{pool=\"php-fpm@b.service\""), std::string::npos)
      << "requests must be absent where they cannot be counted";
  EXPECT_TRUE(has("idlepool_pool_up{pool=\"php-fpm@a.service\"} 1"));
  EXPECT_TRUE(
      has("idlepool_pool_socket_listening{pool=\"php-fpm@a.service\",socket=\"/run/php/a.sock\","
          "unit=\"php-fpm@a.socket\"} 1"));
  EXPECT_TRUE(
      has("idlepool_pool_socket_listening{pool=\"php-fpm@b.service\",socket=\"127.0.0.1:8888\","
          "unit=\"php-fpm@b.socket\"} 0"));
  EXPECT_TRUE(has("idlepool_pool_up{pool=\"php-fpm@b.service\"} 0"));
  EXPECT_TRUE(has("idlepool_pool_idle_seconds{pool=\"php-fpm@a.service\"} 30"));
  EXPECT_TRUE(has("idlepool_pool_stop_in_seconds{pool=\"php-fpm@a.service\"} 270"));
  EXPECT_TRUE(has("idlepool_pool_stops_total{pool=\"php-fpm@a.service\",reason=\"idle\"} 4"));
  EXPECT_TRUE(has("idlepool_pool_stops_total{pool=\"php-fpm@a.service\",reason=\"operator\"} 1"));
  EXPECT_TRUE(has("idlepool_pool_wake_latency_seconds_count{pool=\"php-fpm@a.service\"} 2"));
  EXPECT_TRUE(has("idlepool_pool_wake_latency_seconds_bucket{pool=\"php-fpm@a.service\",le=\"0.5\"} 1"));
  EXPECT_TRUE(has("idlepool_pool_wake_latency_seconds_bucket{pool=\"php-fpm@a.service\",le=\"2.5\"} 2"));
  EXPECT_TRUE(has("idlepool_pool_wake_latency_seconds_bucket{pool=\"php-fpm@a.service\",le=\"+Inf\"} 2"));
  EXPECT_TRUE(has("idlepool_pool_visitor_wake_seconds_count{pool=\"php-fpm@a.service\"} 1"));
  EXPECT_TRUE(has("idlepool_pool_visitor_wake_seconds_bucket{pool=\"php-fpm@a.service\",le=\"2.5\"} 0"));
  EXPECT_TRUE(has("idlepool_pool_visitor_wake_slowest_seconds{pool=\"php-fpm@a.service\"} 3"));
  EXPECT_TRUE(has("idlepool_memory_released_bytes_total 67108864"));
  EXPECT_TRUE(has("idlepool_probe_tier{counter=\"unix_closes\",tier=\"unavailable\"} 1"));
  EXPECT_TRUE(has("idlepool_decisions_deferred_total{reason=\"rate-limit\"} 2"));
  EXPECT_EQ(text.find("idlepool_pool_stop_in_seconds{pool=\"php-fpm@b.service\""), std::string::npos)
      << "no stop is planned for a pool with work in flight";
}

}  // namespace
}  // namespace idlepool::metrics
