#include "daemon.h"

#include <grp.h>
#include <linux/capability.h>
#include <malloc.h>
#include <signal.h>
#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <systemd/sd-daemon.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <list>

#include "control_server.h"
#include "event_loop.h"
#include "idlepool/kinds/service_kind.h"
#include "idlepool/sys/cgroup.h"
#include "idlepool/sys/files.h"
#include "idlepool/sys/nudge.h"
#include "idlepool/sys/probe.h"
#include "idlepool/sys/process_watcher.h"
#include "idlepool/sys/service_manager.h"
#include "idlepool/version.h"
#include "idlepool/wire/http.h"
#include "idlepool/wire/rhythm_state.h"
#include "idlepool/wire/status_json.h"
#include "metrics.h"
#include "pool_manager.h"
#include "stream_server.h"

namespace idlepool::daemon {
namespace {

// keepalive-connections = close looks at a pool's processes (/proc/PID/syscall and fd) and shuts a connection down
// through a duplicate of a worker's descriptor (pidfd_getfd): ptrace access to processes of other users. The shipped
// unit does not grant it; without it such connections hold the stop, as with wait, and the log says so.
void check_close_privileges(const DaemonConfig& c) {
  bool close = c.defaults.kept_alive == KeptAlive::kClose;
  for (const auto& [unit, o] : c.pools) close = close || o.kept_alive == KeptAlive::kClose;
  if (!close) return;
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[2]{};
  if (::syscall(SYS_capget, &header, data) == 0 && (data[0].effective & (1u << CAP_SYS_PTRACE)) != 0) return;
  spdlog::warn(
      "keepalive-connections = close needs CAP_SYS_PTRACE (to see that a pool's worker waits on a kept-alive "
      "connection, and to shut it down); without it those connections hold the stop as with wait. To grant it: "
      "systemctl edit idlepoold, [Service] CapabilityBoundingSet=CAP_SYS_PTRACE");
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

// A nudge whose TCP handshake is under way: its socket is closed once writable, or at its deadline.
struct PendingNudge {
  sys::UniqueFd fd;
  EventLoop::Source io, deadline;
};
constexpr std::chrono::milliseconds kNudgeDeadline{500};

// The metrics bearer token, from a file only root may read: a token anyone can read protects nothing.
Result<std::optional<std::string>> read_metrics_token(const std::string& path, sys::FileReader& files) {
  if (path.empty()) return std::optional<std::string>();
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return Error::from_errno("metrics-token-file " + path, errno);
  if (st.st_uid != 0 || (st.st_mode & (S_IROTH | S_IWOTH | S_IWGRP)) != 0)
    return Error{"metrics-token-file " + path +
                     " must be root's and neither readable nor writable by others, nor "
                     "writable by its group (e.g. root:prometheus 0640)",
                 EPERM};
  auto text = files.read(path);
  if (!text) return text.error();
  std::string token = *text;
  while (!token.empty() && (token.back() == '\n' || token.back() == '\r' || token.back() == ' ')) token.pop_back();
  if (token.size() < 16 || token.find_first_of(" \t\r\n") != std::string::npos)
    return Error{"metrics-token-file " + path + " must hold one token of at least 16 characters", EINVAL};
  return std::optional<std::string>(token);
}

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
  std::unique_ptr<EventLoop> loop;
  std::unique_ptr<sys::Probe> probe;
  std::unique_ptr<sys::CgroupFs> cgroups;
  std::unique_ptr<sys::ProcessWatcher> watcher;
  sys::BoundedFiles files;
  std::unique_ptr<kinds::Kinds> kinds;
  std::unique_ptr<PoolManager> manager;
  // After the manager: destroyed before it, so that no answer from systemd reaches a manager that is gone.
  std::unique_ptr<sys::SdBus> bus;
  std::unique_ptr<ControlServer> control;
  std::unique_ptr<StreamServer> metrics_endpoint;
  std::vector<EventLoop::Source> sources;
  EventLoop::Source deadline;
  EventLoop::Source resync_timer;  // a process-connector resync that waited (ProcessWatcher::resync_due)
  std::list<PendingNudge> nudges;
  bool ready = false;
  bool due = false;
  std::optional<MonoTime> next;
  std::string last_status;
  uint64_t units_read_at_trim = 0;
  std::optional<std::string> metrics_token;
  // The learnt rhythms' state file: where, what was last written, and when.
  std::string state_file;
  std::string state_written;
  MonoTime state_written_at{0};
  static constexpr std::chrono::minutes kStateEvery{10};

  void load_state() {
    if (state_file.empty()) return;
    auto text = files.read(state_file);
    if (!text) {
      if (text.error().code != ENOENT) spdlog::warn("ignoring {}: {}", state_file, text.error().message);
      return;
    }
    auto learnt = wire::decode_rhythms(*text);
    if (!learnt) {
      spdlog::warn("ignoring {}: {}; the pools learn their rhythms again", state_file, learnt.error().message);
      return;
    }
    spdlog::info("{}: the rhythms of {} pools", state_file, learnt->size());
    state_written = *text;
    manager->restore(std::move(*learnt));
  }

  // Written every kStateEvery when it changed, and when the daemon stops.
  void save_state(bool now_or_never) {
    if (state_file.empty()) return;
    MonoTime t = manager->now();
    if (!now_or_never && t - state_written_at < kStateEvery) return;
    state_written_at = t;
    std::string text = wire::encode_rhythms(manager->learnt());
    if (text == state_written) return;
    auto w = sys::write_atomically(state_file, text, 0600);
    if (!w && w.error().code == ENOENT) {  // its directory (systemd's StateDirectory=, when run by it) is missing
      std::string dir = state_file.substr(0, state_file.rfind('/'));
      if (!dir.empty() && ::mkdir(dir.c_str(), 0700) == 0) w = sys::write_atomically(state_file, text, 0600);
    }
    if (!w) {
      spdlog::warn("cannot keep the learnt rhythms: {}", w.error().message);
      return;
    }
    state_written = std::move(text);
  }

  Result<void> add(Result<EventLoop::Source> s) {
    if (!s) return s.error();
    sources.push_back(std::move(*s));
    return {};
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
    auto token = read_metrics_token(inv->config.metrics_token_file, files);
    if (!token) {
      spdlog::error("reload: {}; keeping the running configuration", token.error().message);
      return token.error();
    }
    sd_notify(0, "RELOADING=1");
    metrics_token = *token;
    spdlog::set_level(spdlog::level::from_str(inv->config.log_level));
    bus->set_stop_via(inv->config.stop_method == StopMethod::kSystemctl ? sys::SdBus::StopVia::kSystemctl
                                                                        : sys::SdBus::StopVia::kBus);
    manager->reconfigure(inv->config);
    if (inv->config.state_file != state_file) {
      save_state(true);  // what was learnt goes where it is asked for from now on
      state_file = inv->config.state_file;
      state_written.clear();
      save_state(true);
    }
    check_close_privileges(inv->config);
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
    d.bus_signals_dropped = bus->dropped_signals();
    d.deferred_rate_limit = stats.deferred_rate_limit;
    d.deferred_in_flight = stats.deferred_in_flight;
    d.units_read = stats.units_read;
    auto progress = manager->discovery_progress();
    d.discovering = progress.running;
    d.discovery_done = progress.done;
    d.discovery_total = progress.total;
    return m;
  }

  static wire::ControlResponse failure(wire::ErrorCode code, std::string error) {
    return wire::control_failure({code, std::move(error)});
  }

  // idlepoolctl's verbs. Root may use them all; members of control-group only those that read.
  wire::ControlResponse handle(const wire::ControlRequest& req, const Peer& peer) {
    using wire::Verb;
    if (wire::verb_changes_state(req.verb) && peer.uid != 0u)
      return failure(wire::ErrorCode::kPermissionDenied,
                     std::string(wire::to_string(req.verb)) + " needs root; control-group members may only read");
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
        if (!r)
          return failure(r.error().code == ENOENT ? wire::ErrorCode::kUnknownPool : wire::ErrorCode::kRefused,
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

  // A nudge without blocking: a TCP handshake under way is left to the loop.
  Result<void> nudge(const SocketAddress& address, const std::optional<sys::SocketFile>& file) {
    auto started = sys::start_nudge(address, file);
    if (!started) return started.error();
    if (!started->valid()) return {};
    auto it = nudges.insert(nudges.end(), PendingNudge{});
    it->fd = std::move(*started);
    auto done = [this, it] { nudges.erase(it); };
    auto io = loop->io(it->fd.get(), EPOLLOUT, [done](uint32_t) { done(); });
    auto timer = loop->timer(done);
    if (!io || !timer) {
      nudges.erase(it);
      return Error{"cannot wait for the nudge's handshake", EIO};
    }
    timer->arm(EventLoop::now() + kNudgeDeadline);
    it->io = std::move(*io);
    it->deadline = std::move(*timer);
    return {};
  }

  void take_process_events(const Result<std::vector<PoolEvent>>& got) {
    if (!got) {
      spdlog::error("process connector: {}, ignoring", got.error().message);
      return;
    }
    manager->on_pool_events(*got);
  }

  // After the events of each loop iteration: systemd's signals, then a decision round if anything changed or a
  // deadline came, then the timer for the next deadline.
  void after_events() {
    auto events = bus->take_events();
    if (!events.empty()) manager->on_unit_events(events);
    // After reading many units at once (a thousand pools starting, a daemon-reload), give the heap's free pages
    // back: they would stay resident for good.
    if (manager->stats().units_read - units_read_at_trim >= 64 && !manager->discovering()) {
      ::malloc_trim(0);
      units_read_at_trim = manager->stats().units_read;
    }
    if (ready && (due || manager->dirty())) {
      due = false;
      next = manager->evaluate();
      deadline.arm(next);
      save_state(false);
    }
    notify_status();
  }

  void on_discovered() {
    ::malloc_trim(0);  // what discovery read from systemd is parsed and gone
    units_read_at_trim = manager->stats().units_read;
    ready = true;
    next = manager->evaluate();
    deadline.arm(next);
    sd_notify(0, "READY=1");
    notify_status();
    spdlog::info("ready: {}; RSS {:.1f} MiB", last_status, static_cast<double>(resident_bytes()) / (1 << 20));
  }

  Result<void> serve_metrics(const DaemonConfig& config);
  Result<void> wire_loop();
};

Daemon::Daemon(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Daemon::~Daemon() = default;

Result<void> Daemon::Impl::serve_metrics(const DaemonConfig& config) {
  if (config.metrics_listen == "off") return {};
  auto token = read_metrics_token(config.metrics_token_file, files);
  if (!token) return token.error();
  metrics_token = *token;
  // Served by the loop itself: a scrape reads the probe and builds the families there and then.
  auto address = parse_socket_address(config.metrics_listen);
  if (!address) return Error{"metrics-listen: " + address.error().message, EINVAL};
  auto fd = listen_tcp(*address);
  if (!fd) return Error{"cannot serve metrics: " + fd.error().message, fd.error().code};
  StreamServer::Limits limits;
  limits.max_request = wire::kMaxHttpRequest;
  limits.too_long = wire::http_too_long();
  // Local users each get at most a few connections at once (the peer's uid from sock_diag): nobody can hold every slot.
  limits.max_per_user = 8;
  limits.identify = [](int client) {
    Peer p;
    p.uid = sys::local_tcp_peer_uid(client);
    return p;
  };
  auto respond = [this](std::string_view in, const Peer&) {
    return wire::respond_http(
        in,
        [this] {
          manager->refresh();
          return metrics::render(metrics::build(model()));
        },
        metrics_token);
  };
  auto endpoint = StreamServer::serve("metrics endpoint " + config.metrics_listen, std::move(*fd), *loop,
                                      std::move(limits), std::move(respond));
  if (!endpoint) return endpoint.error();
  metrics_endpoint = std::move(*endpoint);
  spdlog::info("metrics on http://{}/metrics", config.metrics_listen);
  return {};
}

Result<void> Daemon::Impl::wire_loop() {
  for (int sig : {SIGTERM, SIGINT})
    if (auto r = add(loop->signal(sig,
                                  [this](const signalfd_siginfo& si) {
                                    spdlog::info("{}: stopping", strsignal(static_cast<int>(si.ssi_signo)));
                                    sd_notify(0, "STOPPING=1");
                                    loop->exit(0);
                                  }));
        !r)
      return r;
  if (auto r = add(loop->signal(SIGHUP,
                                [this](const signalfd_siginfo&) {
                                  (void)reload();
                                  due = true;
                                }));
      !r)
    return r;
  if (auto r = add(loop->io(watcher->fd(), EPOLLIN,
                            [this](uint32_t) {
                              auto got = watcher->on_readable();
                              if (!got) {
                                spdlog::error("process connector: {}, ignoring", got.error().message);
                                return;
                              }
                              manager->on_pool_events(*got);
                            }));
      !r)
    return r;
  auto timer = loop->timer([this] { due = true; });
  if (!timer) return timer.error();
  deadline = std::move(*timer);
  if (auto r = add(loop->post([this] { after_events(); })); !r) return r;
  return loop->enable_watchdog();
}

Result<std::unique_ptr<Daemon>> Daemon::create(const Invocation& invocation, std::vector<std::string> args) {
  auto impl = std::make_unique<Impl>();
  impl->args = std::move(args);
  const DaemonConfig& config = invocation.config;

  // Signals the loop takes (sd-event needs them blocked); SIGCHLD for systemctl children watched through pidfds.
  sigset_t mask;
  sigemptyset(&mask);
  for (int s : {SIGTERM, SIGINT, SIGHUP, SIGCHLD}) sigaddset(&mask, s);
  sigprocmask(SIG_BLOCK, &mask, nullptr);
  auto loop = EventLoop::create();
  if (!loop) return loop.error();
  impl->loop = std::move(*loop);

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

  auto bus =
      sys::SdBus::open(impl->loop->get(), config.stop_method == StopMethod::kSystemctl ? sys::SdBus::StopVia::kSystemctl
                                                                                       : sys::SdBus::StopVia::kBus);
  if (!bus) return bus.error();
  impl->kinds = std::make_unique<kinds::Kinds>(impl->files);

  Impl* d = impl.get();
  sys::CgroupFs* cgroups_ptr = impl->cgroups.get();
  PoolManager::Deps deps{
      **bus,
      *impl->probe,
      *impl->watcher,
      *impl->kinds,
      &EventLoop::now,
      &is_socket,
      [cgroups_ptr](const std::string& cg) { return cgroups_ptr->memory_current(cg); },
      [d](const SocketAddress& a, const std::optional<sys::SocketFile>& f) { return d->nudge(a, f); },
      [cgroups_ptr](const std::string& cg, const std::vector<uint32_t>& inodes) {
        return cgroups_ptr->waiting_readers(cg, inodes);
      },
      [cgroups_ptr](const std::string& cg, const std::vector<uint32_t>& inodes) {
        return cgroups_ptr->shut_down_waiting(cg, inodes);
      }};
  impl->manager = std::make_unique<PoolManager>(config, deps);
  impl->state_file = config.state_file;
  impl->load_state();
  check_close_privileges(config);
  impl->bus = std::move(*bus);

  std::optional<gid_t> group;
  if (!config.control_group.empty()) {
    struct group* g = getgrnam(config.control_group.c_str());
    if (g == nullptr) return Error{"control-group '" + config.control_group + "' does not exist", ENOENT};
    group = g->gr_gid;
  }
  auto control =
      ControlServer::open(config.control_socket, group, *impl->loop,
                          [d](const wire::ControlRequest& req, const Peer& peer) { return d->handle(req, peer); });
  if (!control) return control.error();
  impl->control = std::move(*control);
  if (auto r = impl->serve_metrics(config); !r) return r.error();
  if (auto r = impl->wire_loop(); !r) return r.error();
  return std::unique_ptr<Daemon>(new Daemon(std::move(impl)));
}

int Daemon::run() {
  Impl& d = *impl_;
  // Thousands of units on a slow machine can take longer than systemd's start timeout: say we are getting on. The
  // loop runs meanwhile: idlepoolctl and scrapes are answered, and a stop asked for ends the daemon at once.
  d.manager->on_discovery_progress([](size_t done, size_t total) {
    sd_notifyf(0, "EXTEND_TIMEOUT_USEC=60000000\nSTATUS=discovering pools: %zu of %zu units read", done, total);
  });
  d.manager->discover([&d] {
    if (!d.ready) d.on_discovered();
  });
  auto r = d.loop->run();
  d.save_state(true);
  if (!r) {
    spdlog::critical("{}", r.error().message);
    return 1;
  }
  if (*r != 0) spdlog::critical("lost the connection to the system bus");
  return *r == 0 ? 0 : 1;
}

}  // namespace idlepool::daemon
