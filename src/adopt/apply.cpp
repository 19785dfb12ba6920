#include "idlepool/adopt/apply.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <grp.h>
#include <netinet/in.h>
#include <pwd.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>

#include "idlepool/sys/files.h"
#include "idlepool/sys/unique_fd.h"

namespace idlepool::adopt {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr auto kDrainTimeout = std::chrono::seconds(30);
constexpr auto kSwitchTimeout = std::chrono::seconds(30);

Error errno_error(const std::string& what) { return Error::from_errno(what, errno); }

// Runs a command (no shell); its output goes to ours. Fails naming the command.
Result<void> run(const std::vector<std::string>& argv, std::ostream& log, bool quiet = false) {
  std::vector<char*> args;
  args.reserve(argv.size() + 1);
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  log.flush();
  pid_t pid = ::fork();
  if (pid < 0) return errno_error("fork");
  if (pid == 0) {
    if (quiet) {
      int null = ::open("/dev/null", O_WRONLY | O_CLOEXEC);
      if (null >= 0) {
        ::dup2(null, 1);
        ::dup2(null, 2);
      }
    }
    ::execvp(args[0], args.data());
    _exit(127);
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return {};
  std::string cmd;
  for (const auto& a : argv) cmd += (cmd.empty() ? "" : " ") + a;
  return Error{cmd + " failed (status " + std::to_string(WIFEXITED(status) ? WEXITSTATUS(status) : -1) + ")", EIO};
}

bool unit_active(const std::string& unit) {
  std::ostringstream ignored;
  return run({"systemctl", "--quiet", "is-active", unit}, ignored).ok();
}

Result<std::string> read_all(const std::string& path) {
  sys::BoundedFiles files;
  return files.read(path);
}

// Writes `text` to `path` through a temporary file and a rename, so no reader ever sees half of it.
Result<void> write_atomic(const std::string& path, const std::string& text, int mode) {
  std::error_code ec;
  fs::create_directories(fs::path(path).parent_path(), ec);
  if (ec) return Error{"cannot create " + fs::path(path).parent_path().string() + ": " + ec.message(), EIO};
  return sys::write_atomically(path, text, static_cast<mode_t>(mode));
}

// A byte-for-byte copy that keeps the mode, owner and times, written atomically.
Result<void> copy_exact(const std::string& from, const std::string& to) {
  struct stat st {};
  if (::stat(from.c_str(), &st) != 0) return errno_error("cannot stat " + from);
  auto text = read_all(from);
  if (!text) return text.error();
  if (auto w = write_atomic(to, *text, st.st_mode & 07777); !w) return w;
  if (::chown(to.c_str(), st.st_uid, st.st_gid) != 0) return errno_error("cannot chown " + to);
  timespec times[2] = {st.st_atim, st.st_mtim};
  if (::utimensat(AT_FDCWD, to.c_str(), times, 0) != 0) return errno_error("cannot set the times of " + to);
  return {};
}

// The kernel's own file: not bounded like the configuration files (a busy host has many sockets).
std::string proc_net_unix() {
  std::ifstream in("/proc/net/unix");
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// Waits until nothing but a listener is bound to `path` (in-flight and queued connections done), or the timeout.
bool drain(const std::string& path, std::ostream& log) {
  auto deadline = Clock::now() + kDrainTimeout;
  while (Clock::now() < deadline) {
    if (unix_sockets_named(proc_net_unix(), path).connections == 0) return true;
    std::this_thread::sleep_for(milliseconds(5));
  }
  log << "  warning: connections on the old socket " << path << " did not finish within 30 s\n";
  return false;
}

// Whether a listening unix socket bound to exactly `path` exists (the shared master's, by the name it bound).
bool unix_listener_named(const std::string& path) { return unix_sockets_named(proc_net_unix(), path).listeners > 0; }

bool connects_unix(const std::string& path) {
  sys::UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_un sun{};
  sun.sun_family = AF_UNIX;
  std::memcpy(sun.sun_path, path.c_str(), std::min(path.size(), sizeof(sun.sun_path) - 1));
  return ::connect(fd.get(), reinterpret_cast<sockaddr*>(&sun), sizeof(sun)) == 0;
}

// Whether a TCP socket listens on host:port (a bind test would race with the master's close; a connect is harmless
// to php-fpm: it gets an empty connection).
bool tcp_port_free(const Listen& l) {
  sys::UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  int one = 1;
  ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in sin{};
  sin.sin_family = AF_INET;
  sin.sin_port = htons(static_cast<uint16_t>(l.port));
  ::inet_pton(AF_INET, l.host.c_str(), &sin.sin_addr);
  return ::bind(fd.get(), reinterpret_cast<sockaddr*>(&sin), sizeof(sin)) == 0;
}

// A listener of our own on a TCP address, in a SO_REUSEPORT group that the socket unit (ReusePort=yes) joins: bound the
// moment the shared master lets go of the port, so that connections queue instead of being refused while systemd
// starts the socket unit. With net.ipv4.tcp_migrate_req (Linux 5.14) the connections queued here move to systemd's
// listener when this one closes; without it they are reset.
sys::UniqueFd bind_interim(const Listen& l) {
  sys::UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  int one = 1;
  ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
  sockaddr_in sin{};
  sin.sin_family = AF_INET;
  sin.sin_port = htons(static_cast<uint16_t>(l.port));
  ::inet_pton(AF_INET, l.host.c_str(), &sin.sin_addr);
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&sin), sizeof(sin)) != 0 || ::listen(fd.get(), 4096) != 0) return {};
  return fd;
}

// Sets net.ipv4.tcp_migrate_req to 1 for as long as it lives, and back to what it was.
class MigrateRequests {
 public:
  MigrateRequests() {
    std::ifstream in(kPath);
    if (!(in >> old_)) return;
    std::ofstream(kPath) << "1\n";
  }
  ~MigrateRequests() {
    if (!old_.empty()) std::ofstream(kPath) << old_ << "\n";
  }
  bool available() const { return !old_.empty(); }

 private:
  static constexpr const char* kPath = "/proc/sys/net/ipv4/tcp_migrate_req";
  std::string old_;
};

template <typename Pred>
bool wait_for(Pred pred, std::chrono::milliseconds every, std::chrono::seconds timeout) {
  auto deadline = Clock::now() + timeout;
  while (!pred()) {
    if (Clock::now() > deadline) return false;
    std::this_thread::sleep_for(every);
  }
  return true;
}

double ms_since(Clock::time_point t) { return std::chrono::duration<double, std::milli>(Clock::now() - t).count(); }

std::string format_ms(double ms) {
  std::ostringstream o;
  o.precision(1);
  o << std::fixed << ms << " ms";
  return o.str();
}

std::string now_text() {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  ::gmtime_r(&t, &tm);
  char buf[64];
  std::strftime(buf, sizeof(buf), "%Y-%m-%d %H:%M UTC", &tm);
  return buf;
}

struct Adopted {
  Manifest manifest;
  std::string dir;  // its backup directory
};

std::vector<Adopted> read_adopted(const std::string& state_dir) {
  std::vector<Adopted> out;
  sys::BoundedFiles files;
  auto paths = files.glob(state_dir + "/*/*/manifest");
  if (!paths) return out;
  for (const auto& path : *paths) {
    auto text = files.read(path);
    if (!text) continue;
    auto m = parse_manifest(*text);
    if (!m) continue;
    out.push_back({*m, fs::path(path).parent_path().string()});
  }
  return out;
}

bool in_selection(const std::vector<std::string>& selection, const Manifest& m) {
  if (selection.empty()) return true;
  for (const auto& s : selection)
    if (s == m.version + "/" + m.name || s == m.name) return true;
  return false;
}

// The mounts that keep php-fpm from unlinking the paths idlepool's sockets took over, while the master reloads.
class PathGuards {
 public:
  ~PathGuards() { release(); }
  void guard(const std::string& path, std::ostream& log) {
    if (::mount(path.c_str(), path.c_str(), nullptr, MS_BIND, nullptr) == 0)
      paths_.push_back(path);
    else
      log << "  warning: cannot protect " << path << " during the reload: " << std::strerror(errno) << "\n";
  }
  void release() {
    for (const auto& p : paths_) ::umount2(p.c_str(), MNT_DETACH);
    paths_.clear();
  }

 private:
  std::vector<std::string> paths_;
};

// Starts a socket unit, then enables it for the next boot. `systemctl enable` alone reloads systemd's whole
// configuration (seconds on a big host) before it starts anything; the units were loaded by one daemon-reload.
Result<void> start_socket(const std::string& unit, std::ostream& log) {
  if (auto r = run({"systemctl", "start", unit}, log); !r) return r;
  return run({"systemctl", "enable", "--quiet", "--no-reload", unit}, log);
}

// Takes back what adopting `p` wrote (its units, configuration, backup and manifest), for a pool that stays where
// it was.
void forget(const PoolPlan& p, std::ostream& log) {
  std::ostringstream quiet;
  (void)run({"systemctl", "disable", "--quiet", "--no-reload", p.socket_unit}, quiet);
  (void)run({"systemctl", "reset-failed", p.socket_unit, p.service_unit}, quiet);
  for (const auto& f : p.files) ::unlink(f.path.c_str());
  std::error_code ec;
  fs::remove_all(p.backup_dir, ec);
  if (!p.opcache_dir.empty()) fs::remove_all(p.opcache_dir, ec);
  log << "  took back the files written for " << p.version << "/" << p.name << "\n";
}

Result<void> write_files(const std::vector<File>& files, std::ostream& log) {
  for (const auto& f : files) {
    if (auto w = write_atomic(f.path, f.text, f.mode); !w) return w;
    log << "  wrote " << f.path << "\n";
  }
  return {};
}

pid_t master_pid(const std::string& unit) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return 0;
  pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(fds[1], 1);
    ::execlp("systemctl", "systemctl", "show", "-p", "MainPID", "--value", unit.c_str(), nullptr);
    _exit(127);
  }
  ::close(fds[1]);
  char buf[32] = {};
  ssize_t n = pid > 0 ? ::read(fds[0], buf, sizeof(buf) - 1) : -1;
  ::close(fds[0]);
  int status = 0;
  if (pid > 0) ::waitpid(pid, &status, 0);
  return n > 0 ? static_cast<pid_t>(std::atoi(buf)) : 0;
}

Result<void> reload_master(const std::string& unit, std::ostream& log) {
  if (!unit_active(unit)) {
    log << "  " << unit << " is not running; it starts without the adopted pools\n";
    return {};
  }
  log << "  reloading " << unit << "\n";
  return run({"systemctl", "reload", unit}, log);
}

Result<void> apply_version(const Plan& plan, const VersionPlan& v, std::ostream& log) {
  std::vector<const PoolPlan*> pools;
  for (const auto& p : plan.pools)
    if (p.version == v.version && p.ok() && !p.already_adopted) pools.push_back(&p);
  if (pools.empty()) return {};
  // 1. Files: the originals backed up byte for byte, the new configuration and units, the master's drop-in. A failure
  // here takes back what was written: no pool is half adopted.
  for (const PoolPlan* p : pools) {
    log << v.version << "/" << p->name << ":\n";
    Result<void> w = copy_exact(p->source, p->backup_dir + "/original");
    if (w) log << "  kept " << p->source << " as " << p->backup_dir << "/original\n";
    if (w) w = write_files(p->files, log);
    if (!w) {
      for (const PoolPlan* q : pools) forget(*q, log);
      return w;
    }
  }
  if (auto w = write_files(v.files, log); !w) return w;
  if (auto r = run({"systemctl", "daemon-reload"}, log); !r) return r;
  // The opcache file caches (boot makes them again from the same files). A pool without one still works: it compiles
  // its scripts at every wake, as before.
  for (const PoolPlan* p : pools)
    if (!p->opcache_tmpfiles.empty())
      if (auto r = run({"systemd-tmpfiles", "--create", p->opcache_tmpfiles}, log); !r)
        log << "  warning: " << p->name << " has no opcache file cache: " << r.error().message << "\n";
  // 2. Unix pools: idlepool's socket takes the path over; the master's old socket gets no new connection. A socket
  // that does not start leaves its pool where it was (served by the master), its files taken back.
  std::erase_if(pools, [&](const PoolPlan* p) {
    if (!p->listen.unix_socket) return false;
    if (auto r = start_socket(p->socket_unit, log); !r) {
      log << "  " << p->name << ": " << r.error().message << "; it stays in " << v.master_unit << "\n";
      forget(*p, log);
      return true;
    }
    log << "  " << p->listen.path << " is now " << p->socket_unit << "'s\n";
    return false;
  });
  if (pools.empty()) return Error{"no pool of " + v.master_unit + " could be adopted", EIO};
  // 3. The pools leave the master's pool.d; the unix ones' old sockets drain; the master reloads without them.
  for (const PoolPlan* p : pools) {
    if (::unlink(p->source.c_str()) != 0 && errno != ENOENT) return errno_error("cannot remove " + p->source);
    log << "  removed " << p->source << " from " << v.master_unit << "'s configuration\n";
  }
  PathGuards guards;
  for (const PoolPlan* p : pools) {
    if (!p->listen.unix_socket) continue;
    drain(p->listen.path, log);
    guards.guard(p->listen.path, log);
  }
  bool master_was_active = unit_active(v.master_unit);
  MigrateRequests migrate;
  if (auto r = reload_master(v.master_unit, log); !r) return r;
  // 4. Once the master has let go of the old sockets: TCP ports are taken at once (measured), the guards released.
  std::stable_partition(pools.begin(), pools.end(), [](const PoolPlan* p) { return !p->listen.unix_socket; });
  for (const PoolPlan* p : pools) {
    if (p->listen.unix_socket) {
      if (master_was_active && !wait_for([&] { return !unix_listener_named(p->listen.path); }, milliseconds(2),
                                         std::chrono::duration_cast<std::chrono::seconds>(kSwitchTimeout)))
        log << "  warning: " << v.master_unit << " still holds its old socket on " << p->listen.path << "\n";
      continue;
    }
    sys::UniqueFd interim;
    if (!wait_for([&] { return (interim = bind_interim(p->listen)).valid(); }, milliseconds(1),
                  std::chrono::duration_cast<std::chrono::seconds>(kSwitchTimeout)))
      return Error{v.master_unit + " did not release " + p->listen.systemd() + " within 30 s", ETIMEDOUT};
    auto held = Clock::now();
    if (auto r = start_socket(p->socket_unit, log); !r) {
      // The master has let go of the port: it gets the pool back, with one more reload.
      interim.reset();
      log << "  " << p->name << ": " << r.error().message << "; giving it back to " << v.master_unit << "\n";
      if (auto c = copy_exact(p->backup_dir + "/original", p->source); !c) return c;
      forget(*p, log);
      if (auto m = reload_master(v.master_unit, log); !m) return m;
      return r;
    }
    interim.reset();
    log << "  " << p->listen.systemd() << " is now " << p->socket_unit << "'s; idlepoolctl held it for "
        << format_ms(ms_since(held)) << " while systemd started the socket"
        << (migrate.available() ? " (its queue handed over)" : " (no tcp_migrate_req: its queue was reset)") << "\n";
  }
  guards.release();
  for (const PoolPlan* p : pools) {
    if (p->listen.unix_socket && !connects_unix(p->listen.path))
      return Error{p->listen.path + " does not answer after the switch", EIO};
    log << v.version << "/" << p->name << ": adopted; " << p->service_unit << " starts on the first request\n";
  }
  return {};
}

Result<std::vector<Installation>> read_installations_in(const std::string& etc_php) {
  std::vector<Installation> out;
  sys::BoundedFiles files;
  auto paths = files.glob(etc_php + "/*/fpm/php-fpm.conf");
  if (!paths) return paths.error();
  for (const auto& path : *paths) {
    std::string version = fs::path(path).parent_path().parent_path().filename().string();
    auto cfg = sys::read_fpm_config(files, path);
    if (!cfg) return Error{path + ": " + cfg.error().message, cfg.error().code};
    out.push_back({version, path, std::move(*cfg)});
  }
  return out;
}

// Where an adopted pool's state waits while it is undone: out of the manifests' glob, so that the master's --sync
// (its reload) does not take the restored file out again.
std::string undoing_dir(const Adopted& a) {
  return fs::path(a.dir).parent_path().string() + "/." + a.manifest.name + ".undoing";
}

// Puts the pools back into their shared master, with one reload of it.
Result<void> undo_version(const std::string& version, const std::vector<const Adopted*>& pools, bool last,
                          const Environment& env, std::ostream& log) {
  std::string master = "php" + version + "-fpm.service";
  std::vector<Listen> listens;
  for (const Adopted* a : pools) {
    auto listen = parse_listen(a->manifest.listen);
    if (!listen)
      return Error{a->dir + "/manifest: listen " + a->manifest.listen + ": " + listen.error().message, EINVAL};
    listens.push_back(*listen);
  }
  // idlepoold must leave these pools alone while they move: its idle stop of one whose path this undo has just handed
  // to the master would find that path gone (or not its socket) and restart the socket unit, whose link would then
  // take the path back from the master. Pinned at runtime (best effort: idlepoold may not run); the units go away.
  for (const Adopted* a : pools)
    if (run({env.ctl_path, "pin", a->manifest.service_unit}, log, /*quiet=*/true))
      log << "  " << a->manifest.service_unit << ": pinned in idlepoold while it moves\n";
  for (const Adopted* a : pools) {
    if (auto c = copy_exact(a->dir + "/original", a->manifest.source); !c) return c;
    log << version << "/" << a->manifest.name << ": restored " << a->manifest.source << " byte for byte\n";
    fs::rename(a->dir, undoing_dir(*a));
  }
  if (last && ::unlink(placeholder_path(version).c_str()) == 0)
    log << master << ": removed " << placeholder_path(version) << "\n";
  // php-fpm refuses to bind a unix path that answers, and a TCP port idlepool's master holds: from here until the
  // master's reload binds them, the addresses are closed. TCP first (idlepool's master finishes its requests before
  // it lets go of the port), then the unix paths, as late as can be: right before the master is told to reload
  // (SIGUSR2 to it, as its ExecReload does, without systemctl's round trip). Measured per address.
  std::vector<Clock::time_point> closed(pools.size());
  for (size_t i = 0; i < pools.size(); ++i) {
    if (listens[i].unix_socket) continue;
    if (auto r = run({"systemctl", "stop", pools[i]->manifest.socket_unit, pools[i]->manifest.service_unit}, log); !r)
      return r;
    closed[i] = Clock::now();
  }
  bool active = unit_active(master);
  pid_t main_pid = active ? master_pid(master) : 0;
  for (size_t i = 0; i < pools.size(); ++i) {
    if (!listens[i].unix_socket) continue;
    ::unlink(listens[i].path.c_str());
    closed[i] = Clock::now();
  }
  if (main_pid > 0) {
    log << "  reloading " << master << " (SIGUSR2 to " << main_pid << ")\n";
    if (::kill(main_pid, SIGUSR2) != 0) return errno_error("cannot signal " + master);
  } else if (active) {
    if (auto r = reload_master(master, log); !r) return r;
  }
  for (size_t i = 0; i < pools.size(); ++i) {
    const Listen& l = listens[i];
    bool back = active && wait_for([&] { return l.unix_socket ? connects_unix(l.path) : !tcp_port_free(l); },
                                   milliseconds(1), std::chrono::seconds(30));
    if (back)
      log << "  " << l.systemd() << " is " << master << "'s again; it was closed for " << format_ms(ms_since(closed[i]))
          << " (connections in that window fail)\n";
    else if (active)
      log << "  warning: " << master << " does not answer on " << l.systemd() << "\n";
  }
  for (size_t i = 0; i < pools.size(); ++i) {
    const Manifest& m = pools[i]->manifest;
    if (listens[i].unix_socket) {
      std::string staging = staging_path(listens[i].path);
      drain(staging, log);  // idlepool's master finishes what it accepted before it stops
      if (auto r = run({"systemctl", "stop", m.socket_unit, m.service_unit}, log); !r) return r;
      ::unlink(staging.c_str());
    }
    std::ostringstream quiet;
    (void)run({"systemctl", "disable", "--quiet", m.socket_unit}, quiet);
    for (const auto& f : m.files) {
      ::unlink(f.c_str());
      log << "  removed " << f << "\n";
    }
    std::error_code ec;
    fs::remove_all(undoing_dir(*pools[i]), ec);
    if (fs::remove_all(opcache_dir(env, version, m.name), ec) > 0)
      log << "  removed " << opcache_dir(env, version, m.name) << " (its compiled scripts)\n";
    log << version << "/" << m.name << ": back in " << master << "\n";
  }
  if (last) {
    std::string dropin = env.systemd_dir + "/" + master + ".d/idlepool-adopt.conf";
    ::unlink(dropin.c_str());
    ::rmdir((env.systemd_dir + "/" + master + ".d").c_str());
    ::rmdir(fs::path(pools.front()->dir).parent_path().c_str());
    ::rmdir(("/etc/php/" + version + "/fpm/idlepool").c_str());  // only if nothing else is in it
    log << master << ": removed " << dropin << "\n";
  }
  return {};
}

}  // namespace

Result<std::vector<Installation>> read_installations(const std::string& etc_php) {
  return read_installations_in(etc_php);
}

Environment read_environment() {
  Environment env;
  env.have_setfacl = ::access("/usr/bin/setfacl", X_OK) == 0;
  env.user_exists = [](const std::string& name) { return ::getpwnam(name.c_str()) != nullptr; };
  env.group_exists = [](const std::string& name) { return ::getgrnam(name.c_str()) != nullptr; };
  env.now = now_text();
  for (const auto& a : read_adopted(env.state_dir)) env.adopted.push_back(a.manifest.version + "/" + a.manifest.name);
  return env;
}

Result<void> apply_plan(const Plan& plan, std::ostream& log) {
  for (const auto& v : plan.versions)
    if (auto r = apply_version(plan, v, log); !r) return r;
  return {};
}

Result<void> undo(const std::vector<std::string>& selection, const Environment& env, std::ostream& log) {
  auto adopted = read_adopted(env.state_dir);
  std::map<std::string, std::vector<const Adopted*>> chosen;
  std::map<std::string, size_t> total;
  for (const auto& a : adopted) {
    ++total[a.manifest.version];
    if (in_selection(selection, a.manifest)) chosen[a.manifest.version].push_back(&a);
  }
  if (chosen.empty()) {
    log << "Nothing adopted matches.\n";
    return {};
  }
  for (const auto& [version, pools] : chosen)
    if (auto r = undo_version(version, pools, pools.size() == total[version], env, log); !r) return r;
  return run({"systemctl", "daemon-reload"}, log);
}

Result<void> sync(const std::string& version, const Environment& env, std::ostream& log) {
  auto installations = read_installations_in("/etc/php");
  if (!installations) return installations.error();
  const Installation* inst = nullptr;
  for (const auto& i : *installations)
    if (i.version == version) inst = &i;
  if (!inst) return {};
  std::map<std::string, const Adopted*> by_listen;
  auto adopted = read_adopted(env.state_dir);
  for (const auto& a : adopted)
    if (a.manifest.version == version) by_listen[a.manifest.listen] = &a;
  for (const auto& pool : inst->config.pools) {
    auto listen_value = pool.get("listen");
    auto listen = listen_value ? parse_listen(*listen_value) : Result<Listen>(Error{"no listen", EINVAL});
    if (!listen) continue;
    auto it = by_listen.find(listen->systemd());
    if (it == by_listen.end()) continue;
    const Adopted& a = *it->second;
    bool same_pool = pool.name == a.manifest.name && pool.file == a.manifest.source;
    auto now = read_all(pool.file);
    auto kept = read_all(a.dir + "/original");
    if (same_pool && now && kept && *now == *kept) {
      ::unlink(pool.file.c_str());
      log << "idlepool: " << pool.file << " is adopted by idlepool (" << a.manifest.socket_unit
          << "); its copy in pool.d was removed\n";
      continue;
    }
    // A rewritten adopted pool, or another pool on an address idlepool holds: php-fpm would fail binding it.
    std::string aside =
        a.dir + "/rewritten-" + std::to_string(std::time(nullptr)) + "-" + fs::path(pool.file).filename().string();
    if (auto c = copy_exact(pool.file, aside); !c) return c;
    ::unlink(pool.file.c_str());
    log << "idlepool: " << pool.file << " (pool " << pool.name << ") listens on " << listen->systemd() << ", which "
        << a.manifest.socket_unit << " holds; moved to " << aside << " so that "
        << "php" << version << "-fpm does not fail. To change the adopted pool: `idlepoolctl adopt "
        << "--undo " << version << "/" << a.manifest.name << "`, edit, adopt again.\n";
  }
  return {};
}

}  // namespace idlepool::adopt
