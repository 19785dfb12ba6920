#include "daemon.h"

#include <grp.h>
#include <malloc.h>
#include <signal.h>
#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <systemd/sd-daemon.h>
#include <time.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "control_server.h"
#include "idlepool/sys/cgroup.h"
#include "idlepool/sys/nudge.h"
#include "idlepool/sys/php_fpm_files.h"
#include "idlepool/sys/probe.h"
#include "idlepool/sys/process_watcher.h"
#include "idlepool/sys/service_manager.h"
#include "idlepool/sys/unique_fd.h"
#include "idlepool/version.h"
#include "idlepool/wire/http.h"
#include "idlepool/wire/status_json.h"
#include "metrics.h"
#include "pool_manager.h"
#include "stream_server.h"

namespace idlepool::daemon {
namespace {

MonoTime monotonic_now() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return std::chrono::seconds(ts.tv_sec) + std::chrono::nanoseconds(ts.tv_nsec);
}

// Resident set size of this process, from /proc/self/statm (0 if unreadable).
size_t resident_bytes() {
  FILE* f = std::fopen("/proc/self/statm", "re");
  if (!f) return 0;
  unsigned long size = 0, resident = 0;
  int n = std::fscanf(f, "%lu %lu", &size, &resident);
  std::fclose(f);
  return n == 2 ? resident * static_cast<size_t>(::sysconf(_SC_PAGESIZE)) : 0;
}

bool is_socket(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode);
}

// journald reads "<N>" at the start of a line as its syslog priority.
class SyslogPriorityFlag final : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg& msg, const std::tm&, spdlog::memory_buf_t& dest) override {
    static const char* kPrefix[] = {"<7>", "<7>", "<6>", "<4>", "<3>", "<2>", ""};
    const char* p = kPrefix[static_cast<int>(msg.level)];
    dest.append(p, p + std::strlen(p));
  }
  std::unique_ptr<custom_flag_formatter> clone() const override { return std::make_unique<SyslogPriorityFlag>(); }
};

enum Source : uint64_t { kSignal = 1, kTimer, kBus, kProcesses, kWatchdog, kControl, kMetrics };
// Clients of the control socket are tagged kControlClient + fd, those of the metrics endpoint kMetricsClient + fd.
constexpr uint64_t kControlClient = uint64_t{1} << 32;
constexpr uint64_t kMetricsClient = uint64_t{2} << 32;

}  // namespace

void setup_logging(const std::string& level) {
  auto logger = std::make_shared<spdlog::logger>("idlepoold", std::make_shared<spdlog::sinks::stderr_sink_mt>());
  auto formatter = std::make_unique<spdlog::pattern_formatter>();
  if (std::getenv("JOURNAL_STREAM")) {
    formatter->add_flag<SyslogPriorityFlag>('*').set_pattern("%*%v");
  } else {
    formatter->set_pattern("%Y-%m-%d %H:%M:%S.%e %l: %v");
  }
  logger->set_formatter(std::move(formatter));
  logger->set_level(spdlog::level::from_str(level));
  logger->flush_on(spdlog::level::trace);
  spdlog::set_default_logger(logger);
}

class Daemon::Impl {
 public:
  std::vector<std::string> args;
  std::string config_path;
  std::unique_ptr<sys::Probe> probe;
  std::unique_ptr<sys::CgroupFs> cgroups;
  std::unique_ptr<sys::ProcessWatcher> watcher;
  std::unique_ptr<sys::SdBus> bus;
  std::unique_ptr<PoolManager> manager;
  std::unique_ptr<ControlServer> control;
  std::unique_ptr<StreamServer> metrics_endpoint;
  sys::UniqueFd epoll, signals, timer, watchdog;
  uint32_t bus_events = 0;
  std::string last_status;

  Result<void> watch(int fd, uint32_t events, Source source) {
    epoll_event ev{};
    ev.events = events;
    ev.data.u64 = source;
    if (epoll_ctl(epoll.get(), EPOLL_CTL_ADD, fd, &ev) != 0) return Error::from_errno("epoll_ctl", errno);
    return {};
  }

  void arm_timer(std::optional<MonoTime> at) {
    itimerspec spec{};
    if (at) {
      auto ns = std::max<int64_t>(at->count(), 1);
      spec.it_value.tv_sec = ns / 1'000'000'000;
      spec.it_value.tv_nsec = ns % 1'000'000'000;
    }
    timerfd_settime(timer.get(), TFD_TIMER_ABSTIME, &spec, nullptr);
  }

  void rearm_bus() {
    uint32_t wanted = bus->poll_events();
    if (wanted == bus_events) return;
    epoll_event ev{};
    ev.events = wanted;
    ev.data.u64 = kBus;
    epoll_ctl(epoll.get(), EPOLL_CTL_MOD, bus->fd(), &ev);
    bus_events = wanted;
  }

  int bus_timeout_ms() const {
    auto usec = bus->timeout_usec();
    if (!usec) return -1;
    int64_t now_us = std::chrono::duration_cast<std::chrono::microseconds>(monotonic_now()).count();
    int64_t left = static_cast<int64_t>(*usec) - now_us;
    return left <= 0 ? 0 : static_cast<int>((left + 999) / 1000);
  }

  void notify_status() {
    std::string status = manager->summary();
    if (status == last_status) return;
    last_status = status;
    sd_notifyf(0, "STATUS=%s", status.c_str());
  }

  Result<void> reload() {
    auto inv = parse_invocation(args);
    if (!inv) {
      spdlog::error("reload: {}; keeping the running configuration", inv.error().message);
      return inv.error();
    }
    sd_notify(0, "RELOADING=1");
    spdlog::set_level(spdlog::level::from_str(inv->config.log_level));
    bus->set_stop_via(inv->config.stop_method == StopMethod::kSystemctl ? sys::SdBus::StopVia::kSystemctl
                                                                        : sys::SdBus::StopVia::kBus);
    manager->reconfigure(inv->config);
    spdlog::info("configuration reloaded from {}", inv->config_path);
    sd_notify(0, "READY=1");
    return {};
  }

  // The status model: the pools as the manager knows them, and the daemon's own figures.
  status::Model model() {
    status::Model m;
    m.now = manager->now();
    m.pools = manager->status();
    m.summary = manager->summary();
    const auto& stats = manager->stats();
    auto& d = m.daemon;
    d.version = IDLEPOOL_VERSION;
    const auto& tiers = probe->tiers();
    d.probe = {std::string(sys::to_string(tiers.accepts)), std::string(sys::to_string(tiers.requests)),
               std::string(sys::to_string(tiers.tcp_closes)), std::string(sys::to_string(tiers.unix_closes))};
    auto w = watcher->stats();
    d.processes = {w.connector.events, w.connector.lost, w.connector.overruns, w.resyncs, w.connector.rejected};
    d.bus_errors = stats.bus_errors;
    d.deferred_rate_limit = stats.deferred_rate_limit;
    d.deferred_in_flight = stats.deferred_in_flight;
    d.units_read = stats.units_read;
    return m;
  }

  static wire::ControlResponse failure(wire::ErrorCode code, std::string error) {
    return wire::control_failure({code, std::move(error)});
  }

  // idlepoolctl's verbs.
  wire::ControlResponse handle(const wire::ControlRequest& req) {
    using wire::Verb;
    wire::ControlResponse ok;
    if (wire::verb_needs_pool(req.verb) && !manager->has(req.pool))
      return failure(wire::ErrorCode::kUnknownPool, "no pool named " + req.pool + " is managed");
    switch (req.verb) {
      case Verb::kStatus:
      case Verb::kShow: {
        manager->refresh();
        status::Model m = model();
        if (req.verb == Verb::kShow) {
          for (const auto& p : m.pools)
            if (p.unit == req.pool) ok.result = wire::pool_to_json(p, m.now);
          return ok;
        }
        ok.result = wire::status_to_json(m);
        return ok;
      }
      case Verb::kList: {
        nlohmann::json names = nlohmann::json::array();
        for (const auto& p : manager->status()) names.push_back(p.unit);
        ok.result = {{"pools", names}};
        return ok;
      }
      case Verb::kPin:
      case Verb::kUnpin: {
        bool on = req.verb == Verb::kPin;
        if (auto r = manager->pin(req.pool, on); !r) return failure(wire::ErrorCode::kUnknownPool, r.error().message);
        ok.result = {{"pool", req.pool}, {"pinned", on}};
        return ok;
      }
      case Verb::kStop: {
        auto r = manager->stop_now(req.pool);
        if (!r) return failure(r.error().code == ENOENT ? wire::ErrorCode::kUnknownPool : wire::ErrorCode::kRefused,
                               r.error().message);
        ok.result = {{"pool", req.pool}, {"message", *r}};
        return ok;
      }
      case Verb::kCheck:
        ok.result = wire::audits_to_json(manager->audit());
        return ok;
      case Verb::kReload: {
        if (auto r = reload(); !r) return failure(wire::ErrorCode::kFailed, r.error().message);
        ok.result = {{"message", "configuration reloaded"}};
        return ok;
      }
    }
    return failure(wire::ErrorCode::kBadRequest, "unhandled verb");
  }
};

Daemon::Daemon(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Daemon::~Daemon() = default;

Result<std::unique_ptr<Daemon>> Daemon::create(const Invocation& invocation, std::vector<std::string> args) {
  auto impl = std::make_unique<Impl>();
  impl->args = std::move(args);
  const DaemonConfig& config = invocation.config;

  sys::ProbeOptions probe_options;
  probe_options.tier = *sys::parse_tier_choice(config.probe_tier);
  auto probe = sys::Probe::load(probe_options);
  if (!probe) return Error{"cannot load the kernel probe: " + probe.error().message, probe.error().code};
  impl->probe = std::move(*probe);
  // Loading parsed the kernel's BTF (megabytes, freed since): give those pages back rather than carry them for life.
  ::malloc_trim(0);
  const auto& tiers = impl->probe->tiers();
  spdlog::info("kernel probe loaded: accepts by {}, requests by {}, closes by {} (TCP) / {} (unix)",
               sys::to_string(tiers.accepts), sys::to_string(tiers.requests), sys::to_string(tiers.tcp_closes),
               sys::to_string(tiers.unix_closes));
  for (const auto& p : tiers.passed_over) spdlog::info("probe tier passed over: {}", p);

  auto cgroups = sys::CgroupFs::open();
  if (!cgroups) return Error{"cannot find the cgroup hierarchy: " + cgroups.error().message, cgroups.error().code};
  impl->cgroups = std::make_unique<sys::CgroupFs>(std::move(*cgroups));
  auto connector = sys::ProcConnector::open();
  if (!connector) return Error{"cannot follow processes: " + connector.error().message, connector.error().code};
  impl->watcher = std::make_unique<sys::ProcessWatcher>(std::move(*connector), *impl->cgroups);

  auto bus = sys::SdBus::open(config.stop_method == StopMethod::kSystemctl ? sys::SdBus::StopVia::kSystemctl
                                                                           : sys::SdBus::StopVia::kBus);
  if (!bus) return bus.error();
  impl->bus = std::move(*bus);

  sys::CgroupFs* cgroups_ptr = impl->cgroups.get();
  PoolManager::Deps deps{*impl->bus,
                         *impl->probe,
                         *impl->watcher,
                         &monotonic_now,
                         &sys::read_php_fpm_config,
                         &is_socket,
                         [cgroups_ptr](const std::string& cg) { return cgroups_ptr->memory_current(cg); },
                         [](const SocketAddress& a) { return sys::nudge(a); }};
  impl->manager = std::make_unique<PoolManager>(config, deps);

  sigset_t mask;
  sigemptyset(&mask);
  for (int s : {SIGTERM, SIGINT, SIGHUP}) sigaddset(&mask, s);
  sigprocmask(SIG_BLOCK, &mask, nullptr);
  impl->signals.reset(signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK));
  impl->timer.reset(timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK));
  impl->epoll.reset(epoll_create1(EPOLL_CLOEXEC));
  if (!impl->signals.valid() || !impl->timer.valid() || !impl->epoll.valid())
    return Error::from_errno("cannot set up the event loop", errno);
  impl->bus_events = impl->bus->poll_events();
  for (auto r : {impl->watch(impl->signals.get(), EPOLLIN, kSignal), impl->watch(impl->timer.get(), EPOLLIN, kTimer),
                 impl->watch(impl->bus->fd(), impl->bus_events, kBus),
                 impl->watch(impl->watcher->fd(), EPOLLIN, kProcesses)})
    if (!r) return r.error();
  std::optional<gid_t> group;
  if (!config.control_group.empty()) {
    struct group* g = getgrnam(config.control_group.c_str());
    if (g == nullptr) return Error{"control-group '" + config.control_group + "' does not exist", ENOENT};
    group = g->gr_gid;
  }
  Impl* d = impl.get();
  auto control = ControlServer::open(config.control_socket, group, impl->epoll.get(), kControl, kControlClient,
                                     [d](const wire::ControlRequest& req) { return d->handle(req); });
  if (!control) return control.error();
  impl->control = std::move(*control);
  if (config.metrics_listen != "off") {
    // Served by the loop itself: a scrape reads the probe and builds the families there and then.
    auto address = parse_socket_address(config.metrics_listen);
    if (!address) return Error{"metrics-listen: " + address.error().message, EINVAL};
    auto fd = listen_tcp(*address);
    if (!fd) return Error{"cannot serve metrics: " + fd.error().message, fd.error().code};
    StreamServer::Limits limits;
    limits.max_request = wire::kMaxHttpRequest;
    limits.too_long = wire::http_too_long();
    auto respond = [d](std::string_view in) {
      return wire::respond_http(in, [d] {
        d->manager->refresh();
        return metrics::render(metrics::build(d->model()));
      });
    };
    auto endpoint = StreamServer::serve("metrics endpoint " + config.metrics_listen, std::move(*fd), impl->epoll.get(),
                                        kMetrics, kMetricsClient, std::move(limits), std::move(respond));
    if (!endpoint) return endpoint.error();
    impl->metrics_endpoint = std::move(*endpoint);
    spdlog::info("metrics on http://{}/metrics", config.metrics_listen);
  }
  uint64_t watchdog_usec = 0;
  if (sd_watchdog_enabled(0, &watchdog_usec) > 0) {
    impl->watchdog.reset(timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK));
    itimerspec spec{};
    uint64_t half = watchdog_usec / 2;
    spec.it_interval.tv_sec = static_cast<time_t>(half / 1'000'000);
    spec.it_interval.tv_nsec = static_cast<long>(half % 1'000'000) * 1000;
    spec.it_value = spec.it_interval;
    timerfd_settime(impl->watchdog.get(), 0, &spec, nullptr);
    if (auto r = impl->watch(impl->watchdog.get(), EPOLLIN, kWatchdog); !r) return r.error();
  }
  return std::unique_ptr<Daemon>(new Daemon(std::move(impl)));
}

int Daemon::run() {
  Impl& d = *impl_;
  // Thousands of units on a slow machine can take longer than systemd's start timeout: say we are getting on.
  // A stop asked for meanwhile (SIGTERM, SIGINT: blocked, so pending) ends the discovery early; the loop then exits.
  d.manager->on_discovery_progress([](size_t done, size_t total) {
    sd_notifyf(0, "EXTEND_TIMEOUT_USEC=60000000\nSTATUS=discovering pools: %zu of %zu units read", done, total);
    sigset_t pending;
    sigpending(&pending);
    return !sigismember(&pending, SIGTERM) && !sigismember(&pending, SIGINT);
  });
  d.manager->discover();
  d.manager->on_discovery_progress({});
  ::malloc_trim(0);  // what discovery read from systemd is parsed and gone
  uint64_t units_read_at_trim = d.manager->stats().units_read;
  std::optional<MonoTime> next = d.manager->evaluate();
  sd_notify(0, "READY=1");
  d.notify_status();
  spdlog::info("ready: {}; RSS {:.1f} MiB", d.last_status, static_cast<double>(resident_bytes()) / (1 << 20));
  for (;;) {
    std::optional<MonoTime> wake = next;
    if (auto c = d.control->server().expire(d.manager->now()); c && (!wake || *c < *wake)) wake = c;
    if (d.metrics_endpoint)
      if (auto c = d.metrics_endpoint->expire(d.manager->now()); c && (!wake || *c < *wake)) wake = c;
    d.arm_timer(wake);
    d.rearm_bus();
    epoll_event events[16];
    int n = epoll_wait(d.epoll.get(), events, 16, d.bus_timeout_ms());
    if (n < 0) {
      if (errno == EINTR) continue;
      spdlog::critical("epoll_wait: {}", std::strerror(errno));
      return 1;
    }
    bool due = false;
    for (int i = 0; i < n; ++i) {
      uint64_t tag = events[i].data.u64;
      if (d.control->server().owns_tag(tag)) {
        d.control->server().on_client_event(d.control->server().fd_of_tag(tag), events[i].events);
        continue;
      }
      if (d.metrics_endpoint && d.metrics_endpoint->owns_tag(tag)) {
        d.metrics_endpoint->on_client_event(d.metrics_endpoint->fd_of_tag(tag), events[i].events);
        continue;
      }
      switch (events[i].data.u64) {
        case kSignal: {
          signalfd_siginfo si{};
          while (read(d.signals.get(), &si, sizeof(si)) == sizeof(si)) {
            if (si.ssi_signo == SIGHUP) {
              (void)d.reload();
              due = true;
              continue;
            }
            spdlog::info("{}: stopping", strsignal(static_cast<int>(si.ssi_signo)));
            sd_notify(0, "STOPPING=1");
            return 0;
          }
          break;
        }
        case kTimer: {
          uint64_t expirations = 0;
          (void)!read(d.timer.get(), &expirations, sizeof(expirations));
          due = true;
          break;
        }
        case kWatchdog: {
          uint64_t expirations = 0;
          (void)!read(d.watchdog.get(), &expirations, sizeof(expirations));
          sd_notify(0, "WATCHDOG=1");
          break;
        }
        case kControl:
          d.control->server().on_listen_readable(d.manager->now());
          break;
        case kMetrics:
          d.metrics_endpoint->on_listen_readable(d.manager->now());
          break;
        case kProcesses: {
          auto got = d.watcher->on_readable();
          if (!got) {
            spdlog::error("process connector: {}, ignoring", got.error().message);
            break;
          }
          d.manager->on_pool_events(*got);
          break;
        }
        default:
          break;
      }
    }
    // The bus: also when its own timeout passed (no fd event), sd_bus_process() handles that.
    if (auto r = d.bus->process(); !r) {
      spdlog::critical("{}", r.error().message);
      return 1;
    }
    auto unit_events = d.bus->take_events();
    if (!unit_events.empty()) {
      d.manager->on_unit_events(unit_events);
      // After reading many units at once (a thousand pools starting, a daemon-reload), give the heap's free pages
      // back: they would stay resident for good.
      if (d.manager->stats().units_read - units_read_at_trim >= 64) {
        ::malloc_trim(0);
        units_read_at_trim = d.manager->stats().units_read;
      }
    }
    if (due || d.manager->dirty()) next = d.manager->evaluate();
    d.notify_status();
  }
}

}  // namespace idlepool::daemon
