// Prometheus metrics of idlepoold, served with prometheus-cpp's pull exposer. Reading metrics never touches a pool:
// everything comes from the daemon's own model (probe counters, process tracking, systemd state).
//
// Threads: the exposer answers scrapes on its own threads; all daemon state lives on the event loop. A scrape asks
// the loop for a fresh snapshot through an eventfd (the loop reads the probe and publishes), and waits up to one
// second; if the loop does not answer in time, the last published snapshot is served.
#pragma once

#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <prometheus/metric_family.h>

#include "idlepool/core/policy.h"
#include "idlepool/result.h"
#include "idlepool/sys/probe.h"
#include "idlepool/sys/process_watcher.h"
#include "idlepool/sys/unique_fd.h"
#include "status.h"

namespace prometheus {
class Exposer;
}

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

class Exporter {
 public:
  // Listens on `address` (host:port). Errors name the address.
  static Result<std::unique_ptr<Exporter>> start(const std::string& address);
  ~Exporter();

  // Readable when a scrape wants a fresh snapshot; the loop then calls publish().
  int request_fd() const { return request_.get(); }
  void publish(Snapshot snapshot);
  // The port actually bound (for tests that ask for port 0).
  int port() const;

  class Collector;

 private:
  Exporter() = default;
  std::unique_ptr<prometheus::Exposer> exposer_;
  std::shared_ptr<Collector> collector_;
  sys::UniqueFd request_;
};

}  // namespace idlepool::metrics
