// The daemon's one event loop: libsystemd's sd-event, behind a small RAII face. Why sd-event rather than a
// hand-written epoll loop: sd-bus attaches to it natively (its fd, events and timeouts are the loop's business, not
// ours), and it has what the daemon would otherwise write by hand: timers, signals, child processes through their
// pidfds, the watchdog ping at half of WatchdogSec=, and "post" sources that run once per loop iteration after the
// events (the daemon evaluates its pools there, once per batch of events).
//
// Every source is owned by a Source value (disabled and released when it goes); callbacks are std::functions kept
// alive by the source. Nothing here blocks; run() returns when exit() is called.
#pragma once

#include <signal.h>
#include <sys/signalfd.h>
#include <systemd/sd-event.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <utility>

#include "idlepool/core/time.h"
#include "idlepool/result.h"

namespace idlepool::daemon {

class EventLoop {
 public:
  // An event source; empty when default-constructed. Releasing it (destructor, reset()) disables it first.
  class Source {
   public:
    Source() = default;
    explicit Source(sd_event_source* s) : s_(s) {}
    Source(Source&& o) noexcept : s_(std::exchange(o.s_, nullptr)) {}
    Source& operator=(Source&& o) noexcept;
    Source(const Source&) = delete;
    Source& operator=(const Source&) = delete;
    ~Source() { reset(); }

    void reset();
    explicit operator bool() const { return s_ != nullptr; }
    // Timers: fire once at `at` (CLOCK_MONOTONIC); nullopt disarms.
    void arm(std::optional<MonoTime> at);
    // I/O: which of EPOLLIN/EPOLLOUT to wait for.
    void set_io_events(uint32_t events);
    void set_enabled(bool on);

   private:
    sd_event_source* s_ = nullptr;
  };

  static Result<std::unique_ptr<EventLoop>> create();
  ~EventLoop();
  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;

  sd_event* get() const { return e_; }

  Result<Source> io(int fd, uint32_t events, std::function<void(uint32_t revents)> on_event);
  // A one-shot timer, disarmed until Source::arm().
  Result<Source> timer(std::function<void()> on_time);
  // The signal must be blocked first (sigprocmask).
  Result<Source> signal(int signo, std::function<void(const signalfd_siginfo&)> on_signal);
  // A child process by its pidfd; SIGCHLD must be blocked. The callback gets its waitid() result.
  Result<Source> child(int pidfd, std::function<void(const siginfo_t&)> on_exit);
  // Runs after the events of each loop iteration that dispatched any.
  Result<Source> post(std::function<void()> on_post);
  // Pings systemd's watchdog at half of WatchdogSec=, if the service has one.
  Result<void> enable_watchdog();

  // Runs until exit(); returns its code.
  Result<int> run();
  void exit(int code);
  // One iteration, waiting at most `timeout` (tests drive the loop this way).
  Result<void> run_once(std::chrono::milliseconds timeout);

  static MonoTime now();

 private:
  explicit EventLoop(sd_event* e) : e_(e) {}
  sd_event* e_;
};

}  // namespace idlepool::daemon
