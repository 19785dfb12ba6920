// idlepoold wired together: the real adapters (probe, process watcher, systemd over sd-bus), the pool manager, and
// one epoll loop over every fd they have (signalfd, the deadline timerfd, the bus, the process connector, the
// watchdog timer, the control socket and the metrics endpoint). One thread; no thread sleeps waiting for something that
// has an fd; the daemon wakes only for events, for a pool's deadline, and for the watchdog when systemd asks for one.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "idlepool/result.h"
#include "options.h"

namespace idlepool::daemon {

class Daemon {
 public:
  // Loads the probe, subscribes to the process connector and to systemd. Errors say exactly what failed.
  static Result<std::unique_ptr<Daemon>> create(const Invocation& invocation, std::vector<std::string> args);
  ~Daemon();
  // Runs until SIGTERM or SIGINT; returns the exit code.
  int run();

  class Impl;

 private:
  explicit Daemon(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Sets spdlog up: plain lines with syslog priority prefixes under systemd (the journal keeps the levels), timestamps
// on a terminal.
void setup_logging(const std::string& level);

}  // namespace idlepool::daemon
