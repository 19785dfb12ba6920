// idlepoolctl simulate: replays a web server's access logs (or a file of timestamps) through the policy idlepoold
// runs (core/simulate.h), for fixed idle timeouts and for the adaptive window, with no idlepoold, kernel or systemd:
// what idlepool would save on this server, before installing it.
#pragma once

#include <iosfwd>
#include <map>
#include <string>
#include <vector>

namespace idlepool::ctl {

struct SimulateRequest {
  std::vector<std::string> files;
  std::string format = "auto";                  // auto, combined (also vhost_combined), timestamps
  std::string pool_by = "auto";                 // auto (vhost if the lines carry one, else file), file, vhost, prefix
  std::map<std::string, std::string> prefixes;  // --prefix /blog=blog: path prefix -> pool (longest wins)
  double memory_mib = 40;                       // a running pool's memory, for MiB-hours
  std::string cold_start_cost = "5m", adaptive_min = "1m", adaptive_max = "1h";
};

// Prints the table to `out`, problems (with file and line) to `err`; returns idlepoolctl's exit code.
int run_simulate(const SimulateRequest& request, std::ostream& out, std::ostream& err);

}  // namespace idlepool::ctl
