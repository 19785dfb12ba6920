#include "metrics.h"

#include <prometheus/text_serializer.h>

#include <chrono>
#include <deque>
#include <limits>

namespace idlepool::metrics {
namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;

ClientMetric value(std::vector<ClientMetric::Label> labels, double v, MetricType type) {
  ClientMetric m;
  m.label = std::move(labels);
  if (type == MetricType::Counter) {
    m.counter.value = v;
  } else {
    m.gauge.value = v;
  }
  return m;
}

ClientMetric histogram(std::vector<ClientMetric::Label> labels, const status::LatencyHistogram& l) {
  ClientMetric h;
  h.label = std::move(labels);
  h.histogram.sample_count = l.count;
  h.histogram.sample_sum = l.sum;
  uint64_t cumulative = 0;
  for (size_t i = 0; i < status::kWakeLatencyBucketCount; ++i) {
    cumulative += l.buckets[i];
    h.histogram.bucket.push_back({cumulative, status::kWakeLatencyBuckets[i]});
  }
  h.histogram.bucket.push_back({l.count, std::numeric_limits<double>::infinity()});
  return h;
}

// Families are filled through references while later ones are added: a deque keeps those references valid.
struct Families {
  std::deque<MetricFamily> list;
  MetricFamily& add(const std::string& name, const std::string& help, MetricType type) {
    list.push_back(MetricFamily{name, help, type, {}});
    return list.back();
  }
};

}  // namespace

std::vector<MetricFamily> build(const status::Model& s) {
  const auto& d = s.daemon;
  Families f;
  auto& info = f.add("idlepool_build_info", "idlepool version", MetricType::Gauge);
  info.metric.push_back(value({{"version", d.version}}, 1, MetricType::Gauge));

  auto& tier =
      f.add("idlepool_probe_tier", "Hook tier of each probe counter (1 for the tier in use)", MetricType::Gauge);
  for (auto [counter, t] :
       {std::pair{"accepts", &d.probe.accepts}, std::pair{"requests", &d.probe.requests},
        std::pair{"tcp_closes", &d.probe.tcp_closes}, std::pair{"unix_closes", &d.probe.unix_closes}})
    tier.metric.push_back(value({{"counter", counter}, {"tier", *t}}, 1, MetricType::Gauge));

  f.add("idlepool_process_events_total", "Process-connector events read", MetricType::Counter)
      .metric.push_back(value({}, static_cast<double>(d.processes.events), MetricType::Counter));
  f.add("idlepool_process_events_lost_total", "Process-connector events lost (netlink overruns)", MetricType::Counter)
      .metric.push_back(value({}, static_cast<double>(d.processes.lost), MetricType::Counter));
  f.add("idlepool_process_overruns_total", "Netlink receive-buffer overruns of the process connector",
        MetricType::Counter)
      .metric.push_back(value({}, static_cast<double>(d.processes.overruns), MetricType::Counter));
  f.add("idlepool_process_resyncs_total", "Pools resynchronised from their cgroups", MetricType::Counter)
      .metric.push_back(value({}, static_cast<double>(d.processes.resyncs), MetricType::Counter));
  f.add("idlepool_bus_errors_total", "Failed calls to systemd", MetricType::Counter)
      .metric.push_back(value({}, static_cast<double>(d.bus_errors), MetricType::Counter));
  f.add(
       "idlepool_bus_signals_dropped_total",
       "Signals dropped because they were not systemd's broadcasts (forged by a local user, or addressed to idlepoold)",
       MetricType::Counter)
      .metric.push_back(value({}, static_cast<double>(d.bus_signals_dropped), MetricType::Counter));
  auto& deferred =
      f.add("idlepool_decisions_deferred_total", "Stops that were due and waited, by why", MetricType::Counter);
  for (auto [why, n] : {std::pair{"rate-limit", d.deferred_rate_limit}, std::pair{"in-flight", d.deferred_in_flight}})
    deferred.metric.push_back(value({{"reason", why}}, static_cast<double>(n), MetricType::Counter));

  auto& up = f.add("idlepool_pool_up", "1 if the pool's service is running", MetricType::Gauge);
  auto& state =
      f.add("idlepool_pool_state", "The pool service's systemd state (1 for the current one)", MetricType::Gauge);
  auto& pinned = f.add("idlepool_pool_pinned", "1 if the pool is never stopped", MetricType::Gauge);
  auto& safe = f.add("idlepool_pool_stop_safe", "1 if the pool can be stopped safely (it can wake, nothing unsafe)",
                     MetricType::Gauge);
  auto& accepts =
      f.add("idlepool_pool_accepts_total", "Connections accepted on the pool's socket", MetricType::Counter);
  auto& requests =
      f.add("idlepool_pool_requests_total",
            "Request cycles on the pool's socket (absent where the probe tier cannot count them)", MetricType::Counter);
  auto& active = f.add("idlepool_pool_active_connections",
                       "Accepted connections not yet closed: work in flight (idle kept-alive ones not included)",
                       MetricType::Gauge);
  auto& kept_alive =
      f.add("idlepool_pool_idle_connections",
            "Accepted connections the client keeps alive, idle between requests (nginx's upstream keepalive)",
            MetricType::Gauge);
  auto& backlog = f.add("idlepool_pool_backlog_connections", "Connections waiting to be accepted", MetricType::Gauge);
  auto& listening =
      f.add("idlepool_pool_socket_listening",
            "1 if the pool's socket unit listens (0: failed or stopped, so the pool cannot wake)", MetricType::Gauge);
  auto& processes = f.add("idlepool_pool_processes", "Processes of the pool alive", MetricType::Gauge);
  auto& workers = f.add("idlepool_pool_workers", "Processes of the pool besides its main one", MetricType::Gauge);
  auto& idle =
      f.add("idlepool_pool_idle_seconds", "Seconds since the last accept, request or response", MetricType::Gauge);
  auto& stop_in = f.add("idlepool_pool_stop_in_seconds", "Seconds until the planned stop (absent if none is planned)",
                        MetricType::Gauge);
  auto& stops = f.add("idlepool_pool_stops_total", "Stops of the pool by idlepool, by reason", MetricType::Counter);
  auto& wakes = f.add("idlepool_pool_wakes_total", "Starts of the pool by a connection after idlepool stopped it",
                      MetricType::Counter);
  auto& window = f.add("idlepool_pool_idle_window_seconds",
                       "The idle window the pool's last decision used: its fixed idle-timeout, or the adaptive one",
                       MetricType::Gauge);
  auto& window_samples =
      f.add("idlepool_pool_idle_window_samples", "Silences the adaptive window was learnt from (0: fixed or none yet)",
            MetricType::Gauge);
  auto& prewarms =
      f.add("idlepool_pool_prewarms_total", "Starts of the pool before its predicted request", MetricType::Counter);
  auto& prewarm_hits = f.add("idlepool_pool_prewarm_hits_total",
                             "Pre-warms whose request came before the pool was stopped again", MetricType::Counter);
  auto& stalls =
      f.add("idlepool_pool_stalls_total",
            "Looks at stalled pools (connections queued, none accepted, no worker): nudged, nudge-failed or reported",
            MetricType::Counter);
  auto& latency = f.add("idlepool_pool_wake_latency_seconds",
                        "From the start of a stopped pool to its first accept or request", MetricType::Histogram);
  auto& visitor = f.add("idlepool_pool_visitor_wake_seconds",
                        "A woken pool's first visitor: from its connection's arrival to the pool's first response",
                        MetricType::Histogram);
  auto& slowest =
      f.add("idlepool_pool_visitor_wake_slowest_seconds",
            "The slowest visitor's wake of the last hour (idlepool_pool_visitor_wake_seconds)", MetricType::Gauge);
  auto& memory =
      f.add("idlepool_pool_memory_bytes", "memory.current of the pool's cgroup while it runs", MetricType::Gauge);
  auto& released =
      f.add("idlepool_pool_memory_released_bytes_total",
            "memory.current of the pool's cgroup just before each of its stops, summed", MetricType::Counter);
  double released_total = 0;
  for (const auto& p : s.pools) {
    std::vector<ClientMetric::Label> pool{{"pool", p.unit}};
    up.metric.push_back(value(pool, p.running ? 1 : 0, MetricType::Gauge));
    state.metric.push_back(value({{"pool", p.unit}, {"state", p.active_state}}, 1, MetricType::Gauge));
    pinned.metric.push_back(value(pool, p.policy.pinned ? 1 : 0, MetricType::Gauge));
    safe.metric.push_back(value(pool, p.can_wake && !p.unsafe ? 1 : 0, MetricType::Gauge));
    for (const auto& sock : p.sockets) {
      std::vector<ClientMetric::Label> labels{{"pool", p.unit}, {"socket", sock.address}};
      listening.metric.push_back(value({{"pool", p.unit}, {"socket", sock.address}, {"unit", sock.unit}},
                                       sock.listening ? 1 : 0, MetricType::Gauge));
      if (!sock.counters) continue;
      const auto& c = *sock.counters;
      accepts.metric.push_back(value(labels, static_cast<double>(c.accepts), MetricType::Counter));
      if (c.requests) requests.metric.push_back(value(labels, static_cast<double>(*c.requests), MetricType::Counter));
      active.metric.push_back(value(labels, c.active, MetricType::Gauge));
      backlog.metric.push_back(value(labels, c.backlog, MetricType::Gauge));
      kept_alive.metric.push_back(value(labels, c.idle, MetricType::Gauge));
    }
    if (p.processes) {
      processes.metric.push_back(value(pool, p.processes->processes, MetricType::Gauge));
      workers.metric.push_back(value(pool, p.processes->workers, MetricType::Gauge));
    } else {
      processes.metric.push_back(value(pool, 0, MetricType::Gauge));
      workers.metric.push_back(value(pool, 0, MetricType::Gauge));
    }
    if (p.last_activity) idle.metric.push_back(value(pool, to_seconds(s.now - *p.last_activity), MetricType::Gauge));
    if (p.decision.stop_planned())
      stop_in.metric.push_back(value(pool, std::max(0.0, to_seconds(*p.decision.at - s.now)), MetricType::Gauge));
    for (auto cause : status::kStopCauses)
      stops.metric.push_back(value({{"pool", p.unit}, {"reason", std::string(status::to_string(cause))}},
                                   static_cast<double>(p.stops[static_cast<size_t>(cause)]), MetricType::Counter));
    wakes.metric.push_back(value(pool, static_cast<double>(p.wakes), MetricType::Counter));
    window.metric.push_back(value(pool, static_cast<double>(p.window.value.count()), MetricType::Gauge));
    window_samples.metric.push_back(value(pool, p.window.samples, MetricType::Gauge));
    prewarms.metric.push_back(value(pool, static_cast<double>(p.prewarms), MetricType::Counter));
    prewarm_hits.metric.push_back(value(pool, static_cast<double>(p.prewarm_hits), MetricType::Counter));
    for (auto action : status::kStallActions)
      stalls.metric.push_back(value({{"pool", p.unit}, {"action", std::string(status::to_string(action))}},
                                    static_cast<double>(p.stalls[static_cast<size_t>(action)]), MetricType::Counter));
    latency.metric.push_back(histogram(pool, p.wake_latency));
    visitor.metric.push_back(histogram(pool, p.visitor_wake));
    if (p.slowest_visitor_wake) slowest.metric.push_back(value(pool, *p.slowest_visitor_wake, MetricType::Gauge));
    if (p.memory_bytes) memory.metric.push_back(value(pool, static_cast<double>(*p.memory_bytes), MetricType::Gauge));
    released.metric.push_back(value(pool, static_cast<double>(p.memory_released_bytes), MetricType::Counter));
    released_total += static_cast<double>(p.memory_released_bytes);
  }
  f.add("idlepool_memory_released_bytes_total", "Memory released by all stops (memory.current before each stop)",
        MetricType::Counter)
      .metric.push_back(value({}, released_total, MetricType::Counter));
  f.add("idlepool_pools", "Pools managed", MetricType::Gauge)
      .metric.push_back(value({}, static_cast<double>(s.pools.size()), MetricType::Gauge));
  return {std::make_move_iterator(f.list.begin()), std::make_move_iterator(f.list.end())};
}

std::string render(const std::vector<MetricFamily>& families) {
  return prometheus::TextSerializer().Serialize(families);
}

}  // namespace idlepool::metrics
