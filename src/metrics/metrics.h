// Prometheus metrics of idlepoold: the metric families of the status model (core/status.h), their text exposition, and
// the HTTP side of the endpoint. Reading metrics never touches a pool: everything comes from the daemon's own model
// (probe counters, process tracking, systemd state).
//
// All of it is pure: the daemon serves the endpoint from its own epoll loop (a StreamServer answering with
// wire::respond_http), building a snapshot when a scrape comes in. No thread, no timer: an idle daemon is not woken
// by its metrics endpoint.
#pragma once

#include <prometheus/metric_family.h>

#include <string>
#include <vector>

#include "idlepool/core/status.h"

namespace idlepool::metrics {

// The metric families for a status model (pure).
std::vector<prometheus::MetricFamily> build(const status::Model& model);

// The exposition of `families` in Prometheus' text format (version 0.0.4).
std::string render(const std::vector<prometheus::MetricFamily>& families);

}  // namespace idlepool::metrics
