#include "idlepool/kinds/php_fpm.h"

#include <csignal>
#include <filesystem>
#include <regex>

#include "idlepool/kinds/service_kind.h"

namespace idlepool::kinds {
namespace {

std::string basename_of(const std::string& path) { return std::filesystem::path(path).filename().string(); }

class PhpFpmKind final : public ServiceKind {
 public:
  explicit PhpFpmKind(sys::FileReader& files) : files_(files) {}
  std::string_view name() const override { return "php-fpm"; }
  // php-fpm answers before it reads the empty FCGI_STDIN record that ends a request (8 bytes, a record header), and
  // reads it when it goes back to wait on the connection (fcgi_read_request skips it).
  uint32_t request_end_bytes() const override { return 8; }
  bool claims(const ServiceUnit& service) const override { return runs_php_fpm(service.exec_start); }
  Verdict assess(const AssessInput& in) const override;

 private:
  void judge_listen(const wire::FpmSection& pool, const AssessInput& in, Verdict& v) const;
  sys::FileReader& files_;
};

const std::vector<std::string>* fpm_argv(const ServiceUnit& s) {
  for (const auto& argv : s.exec_start)
    if (!argv.empty() && basename_of(argv[0]).rfind("php-fpm", 0) == 0) return &argv;
  return nullptr;
}

void unsafe(Verdict& v, std::string why) {
  if (!v.unsafe) v.unsafe = std::move(why);
}

// A stop that php-fpm takes as "terminate now" cuts requests in flight: never done unless the operator says so.
void judge_stop(const ServiceUnit& s, const wire::FpmConfig& cfg, const AssessInput& in, Verdict& v) {
  std::vector<std::string> abrupt;
  if (s.kill_signal != SIGQUIT)
    abrupt.push_back("the service stops with signal " + std::to_string(s.kill_signal) +
                     ", which php-fpm takes as 'terminate now' (set KillSignal=SIGQUIT)");
  auto pct = cfg.global.get("process_control_timeout");
  std::optional<int> seconds;
  if (pct) {
    auto parsed = wire::parse_fpm_seconds(*pct);
    if (!parsed) {
      const auto* d = cfg.global.find("process_control_timeout");
      unsafe(v, d->file + ":" + std::to_string(d->line) + ": process_control_timeout: " + parsed.error().message);
      return;
    }
    seconds = *parsed;
  }
  if (!seconds || *seconds == 0)
    abrupt.push_back(
        "php-fpm's process_control_timeout is 0, so a graceful SIGQUIT turns into SIGTERM at once (set "
        "process_control_timeout in [global], e.g. 10s)");
  for (auto& why : abrupt) {
    if (in.allow_abrupt_stop) {
      v.warnings.push_back(std::move(why) + "; stopped anyway (allow-abrupt-stop)");
    } else {
      unsafe(v, "a stop would cut requests in flight: " + why + "; allow-abrupt-stop = yes accepts that");
    }
  }
}

}  // namespace

bool runs_php_fpm(const std::vector<std::vector<std::string>>& exec_start) {
  for (const auto& argv : exec_start)
    if (!argv.empty() && basename_of(argv[0]).rfind("php-fpm", 0) == 0) return true;
  return false;
}

FpmInvocation fpm_invocation(const std::vector<std::string>& argv) {
  FpmInvocation inv;
  for (size_t i = 1; i < argv.size(); ++i) {
    const std::string& a = argv[i];
    auto take = [&](std::string& out, const char* longopt, const char* shortopt) {
      std::string lo = longopt, so = shortopt;
      if ((a == lo || a == so) && i + 1 < argv.size()) {
        out = argv[++i];
        return true;
      }
      if (a.rfind(lo + "=", 0) == 0) {
        out = a.substr(lo.size() + 1);
        return true;
      }
      if (a.rfind(so, 0) == 0 && a.size() > so.size()) {
        out = a.substr(so.size());
        return true;
      }
      return false;
    };
    if (take(inv.config, "--fpm-config", "-y")) continue;
    take(inv.prefix, "--prefix", "-p");
  }
  if (inv.config.empty() && !argv.empty()) {
    // Debian: php-fpm8.2 reads /etc/php/8.2/fpm/php-fpm.conf.
    std::smatch m;
    std::string name = basename_of(argv[0]);
    if (std::regex_match(name, m, std::regex(R"(php-fpm(\d+\.\d+))")))
      inv.config = "/etc/php/" + m[1].str() + "/fpm/php-fpm.conf";
  }
  return inv;
}

FpmListen parse_fpm_listen(const std::string& value) {
  if (value.empty()) return {std::nullopt, "listen is empty"};
  if (value.front() == '/') {
    SocketAddress a;
    a.kind = SocketAddress::Kind::kUnix;
    a.path = value;
    return {a, {}};
  }
  // 'port' alone: every address, IPv6 and v4-mapped ([::]:port).
  if (value.find_first_not_of("0123456789") == std::string::npos) {
    auto a = parse_socket_address("[::]:" + value);
    if (a) return {*a, {}};
    return {std::nullopt, "listen = " + value + ": " + a.error().message};
  }
  auto a = parse_socket_address(value);
  if (a && a->is_tcp()) return {*a, {}};
  return {std::nullopt, "listen = " + value +
                            " is not an address idlepool can read (ip:port, [ipv6]:port, port or "
                            "/absolute/path)"};
}

void PhpFpmKind::judge_listen(const wire::FpmSection& pool, const AssessInput& in, Verdict& v) const {
  const auto* d = pool.find("listen");
  if (!d) return unsafe(v, "php-fpm pool [" + pool.name + "] has no listen (" + pool.file + ")");
  auto listen = parse_fpm_listen(d->value);
  std::string where = d->file + ":" + std::to_string(d->line);
  if (!listen.address) return unsafe(v, where + ": " + listen.problem);
  if (!listen.address->is_unix()) return;
  std::string path = files_.canonical(listen.address->path);
  if (path.empty()) path = listen.address->path;  // its directory is not there (yet): compare as written
  for (const auto& own : in.own_unix_paths)
    if (path == own)
      return unsafe(v, "php-fpm pool [" + pool.name + "] listens on " + own + ", the socket unit's own path (" + where +
                           "): php-fpm unlinks it when it exits and the pool could never wake again (listen on an "
                           "alias, e.g. " +
                           own + ".inherited, passed in FPM_SOCKETS)");
  if (!in.socket_owners) return;
  auto other = in.socket_owners->find(path);
  if (other != in.socket_owners->end() && other->second != in.service->name)
    return unsafe(v, "php-fpm pool [" + pool.name + "] listens on " + path + ", the socket of " + other->second + " (" +
                         where + "): php-fpm unlinks it when it exits and " + other->second +
                         " could never wake again");
}

Verdict PhpFpmKind::assess(const AssessInput& in) const {
  Verdict v;
  const ServiceUnit& s = *in.service;
  const auto* argv = fpm_argv(s);
  FpmInvocation inv = argv ? fpm_invocation(*argv) : FpmInvocation{};
  if (inv.config.empty()) {
    unsafe(v,
           "cannot tell which php-fpm configuration it reads (no --fpm-config on its ExecStart and no default "
           "for its php-fpm binary)");
    return v;
  }
  auto cfg = sys::read_fpm_config(files_, inv.config, inv.prefix);
  if (!cfg) {
    unsafe(v, "cannot read its php-fpm configuration: " + cfg.error().message);
    return v;
  }
  if (cfg->pools.empty()) unsafe(v, inv.config + " defines no pool");
  for (const auto& pool : cfg->pools) {
    judge_listen(pool, in, v);
    if (pool.get("pm") == "ondemand") v.nudge_on_stall = true;
  }
  judge_stop(s, *cfg, in, v);
  return v;
}

std::unique_ptr<ServiceKind> make_php_fpm_kind(sys::FileReader& files) { return std::make_unique<PhpFpmKind>(files); }

}  // namespace idlepool::kinds
