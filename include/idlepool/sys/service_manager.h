// systemd, as the daemon sees it: find units, read their state, stop them, hear about changes. A seam: the daemon
// talks to this interface only, so its logic can be driven by a fake; the real implementation is sd-bus (SdBus).
// Every call is asynchronous: the loop never waits for PID 1, so idlepoolctl and scrapes are answered while a
// thousand units are read.
//
// Answers: an Error naming the unit and what systemd said when a call fails.
#pragma once

#include <systemd/sd-event.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "idlepool/core/time.h"
#include "idlepool/core/units.h"
#include "idlepool/result.h"

namespace idlepool::sys {

using ServiceUnit = idlepool::ServiceUnit;
using SocketUnit = idlepool::SocketUnit;

// What systemd told us since the last take_events().
// The values a PropertiesChanged signal carried, of the properties that change while a unit runs and stops (systemd
// sends them with the signal). Unset: not in this signal.
struct UnitChanges {
  std::optional<std::string> active_state;
  std::optional<std::string> sub_state;
  std::optional<MonoTime> active_enter;
  std::optional<MonoTime> inactive_exit;
  std::optional<bool> job_pending;
  std::optional<uint32_t> main_pid;
  // Something else idlepool reads changed (or was only invalidated, without its value): the unit must be read.
  bool needs_read = false;
  // Nothing idlepool reads (a php-fpm STATUS= text, say): no reason to look at the unit at all.
  bool empty() const {
    return !needs_read && !active_state && !sub_state && !active_enter && !inactive_exit && !job_pending && !main_pid;
  }
};

struct UnitEvent {
  enum class Kind { kChanged, kNew, kRemoved, kReloaded, kJobDone };
  Kind kind = Kind::kChanged;
  std::string unit;
  std::string job_result;  // kJobDone: "done", "canceled", "timeout", "failed", ...
  // kChanged: what the signal carried; nullopt when that is not known (the unit must be read).
  std::optional<UnitChanges> changes = std::nullopt;
};

// An answer to a call, given later from the event loop (never before the call that asked returns).
template <class T>
using Done = std::function<void(T)>;

class ServiceManager {
 public:
  virtual ~ServiceManager() = default;
  // Names of loaded units matching any of `patterns` (systemd globs).
  virtual void list_units(std::vector<std::string> patterns, Done<Result<std::vector<std::string>>> done) = 0;
  // Units read, one result per name in the same order (discovery reads hundreds; many calls are in flight).
  virtual void read_services(std::vector<std::string> names, Done<std::vector<Result<ServiceUnit>>> done) = 0;
  virtual void read_sockets(std::vector<std::string> names, Done<std::vector<Result<SocketUnit>>> done) = 0;
  // Asks systemd to stop the unit (a job; its completion comes as a kJobDone event or a state change). `done` says
  // whether systemd took the job.
  virtual void stop(const std::string& name, Done<Result<void>> done) = 0;
  virtual void restart(const std::string& name, Done<Result<void>> done) = 0;
  // Asks systemd to start the unit (a pre-warm); its sockets are passed to it as at a socket-activated start.
  virtual void start(const std::string& name, Done<Result<void>> done) = 0;
  // What systemd signalled since the last call.
  virtual std::vector<UnitEvent> take_events() = 0;
};

// systemd over D-Bus (sd-bus from libsystemd), attached to the daemon's sd-event loop.
class SdBus final : public ServiceManager {
 public:
  enum class StopVia { kBus, kSystemctl };
  // Connects to the system bus, subscribes to systemd's signals (PID 1's only) and attaches to `event`.
  static Result<std::unique_ptr<SdBus>> open(sd_event* event, StopVia stop_via);
  ~SdBus() override;

  void list_units(std::vector<std::string> patterns, Done<Result<std::vector<std::string>>> done) override;
  void read_services(std::vector<std::string> names, Done<std::vector<Result<ServiceUnit>>> done) override;
  void read_sockets(std::vector<std::string> names, Done<std::vector<Result<SocketUnit>>> done) override;
  void stop(const std::string& name, Done<Result<void>> done) override;
  void restart(const std::string& name, Done<Result<void>> done) override;
  void start(const std::string& name, Done<Result<void>> done) override;
  std::vector<UnitEvent> take_events() override;

  void set_stop_via(StopVia via);
  // Signals dropped because they were not PID 1's broadcasts (forged, or addressed to us).
  uint64_t dropped_signals() const;
  size_t calls_in_flight() const;

  class Impl;

 private:
  explicit SdBus(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace idlepool::sys
