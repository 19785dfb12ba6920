// Prometheus metrics of idlepoold: the metric families of the daemon's model, their text exposition, and the HTTP
// side of the endpoint. Reading metrics never touches a pool: everything comes from the daemon's own model (probe
// counters, process tracking, systemd state).
//
// All of it is pure: the daemon serves the endpoint from its own epoll loop (a StreamServer answering with
// wire::respond_http), building a snapshot when a scrape comes in. No thread, no timer: an idle daemon is not woken
// by its metrics endpoint.
#pragma once

#include <prometheus/metric_family.h>

#include <string>
#include <vector>

#include "idlepool/core/policy.h"
#include "idlepool/result.h"
#include "idlepool/sys/probe.h"
#include "idlepool/sys/process_watcher.h"
#include "status.h"

namespace idlepool::metrics {

// What one scrape shows, built on the loop thread.
struct Snapshot {
  std::vector<daemon::PoolStatus> pools;
  daemon::ManagerStats manager;
  sys::TierReport tiers;
  sys::ProcessWatcherStats processes;
  MonoTime now{0};
  std::string version;
};

// The metric families for a snapshot (pure).
std::vector<prometheus::MetricFamily> build(const Snapshot& snapshot);

// The exposition of `families` in Prometheus' text format (version 0.0.4).
std::string render(const std::vector<prometheus::MetricFamily>& families);

}  // namespace idlepool::metrics
