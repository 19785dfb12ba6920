// The metric families built from the status model: names, labels, values, histogram buckets.
#include "metrics.h"

#include <gtest/gtest.h>
#include <prometheus/text_serializer.h>

namespace idlepool::metrics {
namespace {

using namespace std::chrono_literals;

Snapshot populated() {
  Snapshot s;
  s.version = "0.1.0";
  s.now = std::chrono::duration_cast<MonoTime>(1000s);
  s.tiers.accepts = s.tiers.requests = s.tiers.tcp_closes = sys::Tier::kSock;
  s.tiers.unix_closes = sys::Tier::kUnavailable;
  s.manager.deferred["rate-limit"] = 2;
  s.manager.bus_errors = 1;
  daemon::PoolStatus p;
  p.unit = "php-fpm@a.service";
  p.active_state = "active";
  p.running = true;
  p.can_wake = true;
  daemon::SocketStatus sock;
  sock.unit = "php-fpm@a.socket";
  sock.address = *parse_socket_address("/run/php/a.sock");
  sock.listening = true;
  sys::ListenerSnapshot c;
  c.accepts = 7;
  c.requests = 9;
  c.active = 1;
  c.backlog = 0;
  sock.counters = c;
  p.sockets.push_back(sock);
  p.processes = PoolProcesses{3, 2, true, 100};
  p.last_activity = s.now - 30s;
  p.decision = Decision{Decision::Kind::kWait, s.now + 270s, "idle for 30s of 300s"};
  p.stops_by_reason["idle"] = 4;
  p.stops_by_reason["operator"] = 1;
  p.wakes = 3;
  p.wake_latency.observe(0.3);
  p.wake_latency.observe(2.0);
  p.memory_bytes = 16u << 20;
  p.memory_released_bytes = 64u << 20;
  s.pools.push_back(p);
  daemon::PoolStatus q;  // a stopped pool whose tier cannot count requests
  q.unit = "php-fpm@b.service";
  q.active_state = "inactive";
  daemon::SocketStatus qs;
  qs.address = *parse_socket_address("127.0.0.1:8888");
  sys::ListenerSnapshot qc;
  qc.accepts = 2;
  qs.counters = qc;
  q.sockets.push_back(qs);
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
  EXPECT_TRUE(has("idlepool_pool_up{pool=\"php-fpm@b.service\"} 0"));
  EXPECT_TRUE(has("idlepool_pool_idle_seconds{pool=\"php-fpm@a.service\"} 30"));
  EXPECT_TRUE(has("idlepool_pool_stop_in_seconds{pool=\"php-fpm@a.service\"} 270"));
  EXPECT_TRUE(has("idlepool_pool_stops_total{pool=\"php-fpm@a.service\",reason=\"idle\"} 4"));
  EXPECT_TRUE(has("idlepool_pool_stops_total{pool=\"php-fpm@a.service\",reason=\"operator\"} 1"));
  EXPECT_TRUE(has("idlepool_pool_wake_latency_seconds_count{pool=\"php-fpm@a.service\"} 2"));
  EXPECT_TRUE(has("idlepool_pool_wake_latency_seconds_bucket{pool=\"php-fpm@a.service\",le=\"0.5\"} 1"));
  EXPECT_TRUE(has("idlepool_pool_wake_latency_seconds_bucket{pool=\"php-fpm@a.service\",le=\"2.5\"} 2"));
  EXPECT_TRUE(has("idlepool_pool_wake_latency_seconds_bucket{pool=\"php-fpm@a.service\",le=\"+Inf\"} 2"));
  EXPECT_TRUE(has("idlepool_memory_released_bytes_total 67108864"));
  EXPECT_TRUE(has("idlepool_probe_tier{counter=\"unix_closes\",tier=\"unavailable\"} 1"));
  EXPECT_TRUE(has("idlepool_decisions_deferred_total{reason=\"rate-limit\"} 2"));
}

}  // namespace
}  // namespace idlepool::metrics
