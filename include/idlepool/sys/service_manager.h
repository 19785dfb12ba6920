// systemd, as the daemon sees it: find units, read their state, stop them, hear about changes. A seam: the daemon
// talks to this interface only, so its logic can be driven by a fake; the real implementation is sd-bus (SdBus).
//
// Return values: every call returns an Error naming the unit and what systemd said when it fails.
#pragma once

#include <cstdint>
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

class ServiceManager {
 public:
  virtual ~ServiceManager() = default;
  // Names of loaded units matching any of `patterns` (systemd globs).
  virtual Result<std::vector<std::string>> list_units(const std::vector<std::string>& patterns) = 0;
  virtual Result<ServiceUnit> service(const std::string& name) = 0;
  virtual Result<SocketUnit> socket(const std::string& name) = 0;
  // Many units at once, one result per name in the same order (discovery reads hundreds). The default reads them one
  // by one; SdBus has many calls in flight.
  virtual std::vector<Result<ServiceUnit>> services(const std::vector<std::string>& names) {
    std::vector<Result<ServiceUnit>> out;
    for (const auto& n : names) out.push_back(service(n));
    return out;
  }
  virtual std::vector<Result<SocketUnit>> sockets(const std::vector<std::string>& names) {
    std::vector<Result<SocketUnit>> out;
    for (const auto& n : names) out.push_back(socket(n));
    return out;
  }
  // Asks systemd to stop the unit (a job; completion comes as a kJobDone event or a state change).
  virtual Result<void> stop(const std::string& name) = 0;
  virtual Result<void> restart(const std::string& name) = 0;
  virtual std::vector<UnitEvent> take_events() = 0;
};

// systemd over D-Bus (sd-bus from libsystemd): subscribes to unit signals; its fd joins the epoll loop.
class SdBus final : public ServiceManager {
 public:
  enum class StopVia { kBus, kSystemctl };
  // Connects to the system bus (or the bus at `address`, for tests) and subscribes to systemd's signals.
  static Result<std::unique_ptr<SdBus>> open(StopVia stop_via, const std::string& address = {});
  ~SdBus() override;

  Result<std::vector<std::string>> list_units(const std::vector<std::string>& patterns) override;
  Result<ServiceUnit> service(const std::string& name) override;
  Result<SocketUnit> socket(const std::string& name) override;
  std::vector<Result<ServiceUnit>> services(const std::vector<std::string>& names) override;
  std::vector<Result<SocketUnit>> sockets(const std::vector<std::string>& names) override;
  Result<void> stop(const std::string& name) override;
  Result<void> restart(const std::string& name) override;
  std::vector<UnitEvent> take_events() override;

  int fd() const;
  uint32_t poll_events() const;           // EPOLLIN/EPOLLOUT the connection waits for
  std::optional<uint64_t> timeout_usec() const;  // CLOCK_MONOTONIC deadline of a pending call, if any
  // Dispatches what arrived; queues unit events for take_events().
  Result<void> process();
  void set_stop_via(StopVia via) { stop_via_ = via; }

  class Impl;

 private:
  explicit SdBus(std::unique_ptr<Impl> impl, StopVia via);
  std::unique_ptr<Impl> impl_;
  StopVia stop_via_;
};

// `systemctl stop --no-block UNIT`, run from an argv (no shell): the alternative stop method.
Result<void> systemctl_stop(const std::string& unit);

}  // namespace idlepool::sys
