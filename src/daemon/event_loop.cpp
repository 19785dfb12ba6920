#include "event_loop.h"

#include <time.h>

#include <cerrno>
#include <utility>

namespace idlepool::daemon {
namespace {

// The callback of a source, owned by it: freed by sd-event's destroy callback when the source goes.
template <class F>
struct Holder {
  F f;
  static void destroy(void* p) { delete static_cast<Holder*>(p); }
};

template <class F>
Result<EventLoop::Source> own(int r, sd_event_source* s, Holder<F>* h, const char* what) {
  if (r < 0) {
    delete h;
    return Error::from_errno(std::string("cannot add ") + what + " to the event loop", -r);
  }
  sd_event_source_set_destroy_callback(s, &Holder<F>::destroy);
  return EventLoop::Source(s);
}

}  // namespace

EventLoop::Source& EventLoop::Source::operator=(Source&& o) noexcept {
  if (this != &o) {
    reset();
    s_ = std::exchange(o.s_, nullptr);
  }
  return *this;
}

void EventLoop::Source::reset() {
  if (s_) sd_event_source_disable_unref(std::exchange(s_, nullptr));
}

void EventLoop::Source::arm(std::optional<MonoTime> at) {
  if (!s_) return;
  if (!at) {
    sd_event_source_set_enabled(s_, SD_EVENT_OFF);
    return;
  }
  auto usec = std::chrono::duration_cast<std::chrono::microseconds>(*at).count();
  sd_event_source_set_time(s_, static_cast<uint64_t>(std::max<int64_t>(usec, 1)));
  sd_event_source_set_enabled(s_, SD_EVENT_ONESHOT);
}

void EventLoop::Source::set_io_events(uint32_t events) {
  if (s_) sd_event_source_set_io_events(s_, events);
}

void EventLoop::Source::set_enabled(bool on) {
  if (s_) sd_event_source_set_enabled(s_, on ? SD_EVENT_ON : SD_EVENT_OFF);
}

Result<std::unique_ptr<EventLoop>> EventLoop::create() {
  sd_event* e = nullptr;
  int r = sd_event_new(&e);
  if (r < 0) return Error::from_errno("cannot create the event loop", -r);
  return std::unique_ptr<EventLoop>(new EventLoop(e));
}

EventLoop::~EventLoop() { sd_event_unref(e_); }

Result<EventLoop::Source> EventLoop::io(int fd, uint32_t events, std::function<void(uint32_t)> on_event) {
  using H = Holder<std::function<void(uint32_t)>>;
  auto* h = new H{std::move(on_event)};
  sd_event_source* s = nullptr;
  int r = sd_event_add_io(
      e_, &s, fd, events,
      [](sd_event_source*, int, uint32_t revents, void* p) {
        static_cast<H*>(p)->f(revents);
        return 0;
      },
      h);
  return own(r, s, h, "a file descriptor");
}

Result<EventLoop::Source> EventLoop::timer(std::function<void()> on_time) {
  using H = Holder<std::function<void()>>;
  auto* h = new H{std::move(on_time)};
  sd_event_source* s = nullptr;
  // 1 ms accuracy: deadlines are seconds apart, but a stop a whole sd-event default slack (250 ms) late is sloppy.
  int r = sd_event_add_time(
      e_, &s, CLOCK_MONOTONIC, UINT64_MAX, 1000,
      [](sd_event_source*, uint64_t, void* p) {
        static_cast<H*>(p)->f();
        return 0;
      },
      h);
  auto source = own(r, s, h, "a timer");
  if (source) source->set_enabled(false);
  return source;
}

Result<EventLoop::Source> EventLoop::signal(int signo, std::function<void(const signalfd_siginfo&)> on_signal) {
  using H = Holder<std::function<void(const signalfd_siginfo&)>>;
  auto* h = new H{std::move(on_signal)};
  sd_event_source* s = nullptr;
  int r = sd_event_add_signal(
      e_, &s, signo,
      [](sd_event_source*, const signalfd_siginfo* si, void* p) {
        static_cast<H*>(p)->f(*si);
        return 0;
      },
      h);
  return own(r, s, h, "a signal");
}

Result<EventLoop::Source> EventLoop::child(int pidfd, std::function<void(const siginfo_t&)> on_exit) {
  using H = Holder<std::function<void(const siginfo_t&)>>;
  auto* h = new H{std::move(on_exit)};
  sd_event_source* s = nullptr;
  int r = sd_event_add_child_pidfd(
      e_, &s, pidfd, WEXITED,
      [](sd_event_source*, const siginfo_t* si, void* p) {
        static_cast<H*>(p)->f(*si);
        return 0;
      },
      h);
  return own(r, s, h, "a child process");
}

Result<EventLoop::Source> EventLoop::post(std::function<void()> on_post) {
  using H = Holder<std::function<void()>>;
  auto* h = new H{std::move(on_post)};
  sd_event_source* s = nullptr;
  int r = sd_event_add_post(
      e_, &s,
      [](sd_event_source*, void* p) {
        static_cast<H*>(p)->f();
        return 0;
      },
      h);
  return own(r, s, h, "a post handler");
}

Result<void> EventLoop::enable_watchdog() {
  int r = sd_event_set_watchdog(e_, 1);
  if (r < 0) return Error::from_errno("cannot set up the watchdog", -r);
  return {};
}

Result<int> EventLoop::run() {
  int r = sd_event_loop(e_);
  if (r < 0) return Error::from_errno("event loop", -r);
  return r;
}

void EventLoop::exit(int code) { sd_event_exit(e_, code); }

Result<void> EventLoop::run_once(std::chrono::milliseconds timeout) {
  int r = sd_event_run(e_, static_cast<uint64_t>(timeout.count()) * 1000);
  if (r < 0) return Error::from_errno("event loop", -r);
  return {};
}

MonoTime EventLoop::now() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return std::chrono::seconds(ts.tv_sec) + std::chrono::nanoseconds(ts.tv_nsec);
}

}  // namespace idlepool::daemon
