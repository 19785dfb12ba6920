// systemd's units as idlepool reads them: a pool's service and the .socket units that start it. Plain data (read by
// src/sys/sd_bus.cpp, judged by the service kinds in src/kinds, kept by the daemon).
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "idlepool/core/time.h"

namespace idlepool {

struct ServiceUnit {
  std::string name;
  std::string load_state;    // "loaded", "not-found", ...
  std::string active_state;  // "active", "inactive", "activating", "deactivating", "failed"
  std::string sub_state;     // "running", "dead", ...
  uint32_t main_pid = 0;
  std::string control_group;                         // below the cgroup2 root
  std::vector<std::string> triggered_by;             // units that start it: its .socket units
  MonoTime active_enter{0};                          // CLOCK_MONOTONIC of the last entry into "active"
  MonoTime inactive_exit{0};                         // CLOCK_MONOTONIC of the last start (leaving "inactive")
  std::vector<std::vector<std::string>> exec_start;  // argv of each ExecStart= command
  int kill_signal = 15;
  bool job_pending = false;  // a start/stop job is queued or running
  // systemd's start rate limit (StartLimitBurst= starts per StartLimitIntervalSec=): one start more and the unit
  // fails, and so does its .socket unit (service-start-limit-hit), which then never wakes it again. 0: none.
  uint32_t start_limit_burst = 0;
  std::chrono::microseconds start_limit_interval{0};

  bool running() const { return active_state == "active" && sub_state == "running"; }
};

struct SocketUnit {
  std::string name;
  std::string load_state;
  std::string active_state;
  std::string sub_state;  // "listening" while its service is down, "running" while it is up: both hold the sockets
  std::vector<std::pair<std::string, std::string>> listen;  // (type, address): ("Stream", "/run/php/x.sock")
  std::vector<std::string> triggers;

  bool listening() const { return active_state == "active" && (sub_state == "listening" || sub_state == "running"); }
};

}  // namespace idlepool
