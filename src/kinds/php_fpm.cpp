#include "idlepool/kinds/php_fpm.h"

#include <sys/stat.h>

#include <algorithm>
#include <cctype>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <regex>

#include "idlepool/kinds/service_kind.h"

namespace idlepool::kinds {
namespace {

std::string basename_of(const std::string& path) { return std::filesystem::path(path).filename().string(); }

// The value of option argv[i] as php-fpm's getopt takes it: "-x V", "-xV", "--long V" or "--long=V" (i moves past a
// separate value).
bool option_value(const std::vector<std::string>& argv, size_t& i, std::string_view shortopt, std::string_view longopt,
                  std::string& out) {
  const std::string& a = argv[i];
  if ((a == shortopt || a == longopt) && i + 1 < argv.size()) {
    out = argv[++i];
    return true;
  }
  if (a.size() > longopt.size() && a.compare(0, longopt.size(), longopt) == 0 && a[longopt.size()] == '=') {
    out = a.substr(longopt.size() + 1);
    return true;
  }
  if (a.size() > shortopt.size() && a.compare(0, shortopt.size(), shortopt) == 0) {
    out = a.substr(shortopt.size());
    return true;
  }
  return false;
}

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
  OpcacheSettings master_opcache(const std::vector<std::string>& argv) const;
  sys::FileReader& files_;
  // The masters' ini files, read once while none of them changes: a thousand pools of one PHP version share them,
  // and a pool is judged at every start.
  struct IniRead {
    std::vector<std::pair<std::string, std::optional<int64_t>>> stamps;  // every file read, with its time
    OpcacheSettings settings;
  };
  mutable std::map<std::string, IniRead> ini_reads_;
  static constexpr size_t kMaxIniReads = 64;
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

// PHP's reading of a boolean ini value (zend_ini_parse_bool).
bool ini_bool(std::string value) {
  std::transform(value.begin(), value.end(), value.begin(), [](unsigned char c) { return std::tolower(c); });
  if (value == "true" || value == "yes" || value == "on") return true;
  return std::atoi(value.c_str()) != 0;
}

std::string octal_mode(mode_t mode) {
  char buf[8];
  std::snprintf(buf, sizeof(buf), "%04o", static_cast<unsigned>(mode & 07777));
  return buf;
}

}  // namespace

PhpIniFiles php_ini_files(const std::vector<std::string>& argv) {
  PhpIniFiles f;
  if (argv.empty()) return f;
  std::smatch m;
  std::string name = basename_of(argv[0]);
  if (std::regex_match(name, m, std::regex(R"(php-fpm(\d+\.\d+))"))) {
    f.ini = "/etc/php/" + m[1].str() + "/fpm/php.ini";
    f.scan_dir = "/etc/php/" + m[1].str() + "/fpm/conf.d";
  }
  bool no_ini = false;
  for (size_t i = 1; i < argv.size(); ++i) {
    const std::string& a = argv[i];
    std::string v;
    if (a == "-n" || a == "--no-php-ini") {
      no_ini = true;
    } else if (option_value(argv, i, "-c", "--php-ini", v)) {
      f.ini = v.size() > 4 && v.compare(v.size() - 4, 4, ".ini") == 0 ? v : v + "/php.ini";
    } else if (option_value(argv, i, "-d", "--define", v)) {
      auto eq = v.find('=');
      f.defines.emplace_back(v.substr(0, eq), eq == std::string::npos ? "1" : v.substr(eq + 1));
    }
  }
  if (no_ini) f.ini = f.scan_dir = "";
  return f;
}

void apply_php_ini_setting(const std::string& key, const std::string& value, OpcacheSettings& s) {
  if (key == "zend_extension") {
    if (basename_of(value).rfind("opcache", 0) == 0) s.loaded = true;
  } else if (key == "opcache.enable") {
    s.enabled = ini_bool(value);
  } else if (key == "opcache.file_cache") {
    s.file_cache = value;
  }
}

Result<void> apply_php_ini(std::string_view text, const std::string& file, OpcacheSettings& s) {
  // php.ini is the INI php-fpm's configuration is written in; its sections ([PHP], [opcache]) all apply, except
  // [PATH=...] and [HOST=...] (per directory and per host, for CGI). It has no includes.
  auto none = [](const std::string&) -> Result<std::vector<wire::NamedText>> { return std::vector<wire::NamedText>{}; };
  auto cfg = wire::parse_fpm_config(text, file, none);
  if (!cfg) return cfg.error();
  auto apply = [&](const wire::FpmSection& section) {
    for (const auto& d : section.directives) {
      apply_php_ini_setting(d.key, d.value, s);
      if (d.key == "opcache.file_cache") s.where = d.file + ":" + std::to_string(d.line);
    }
  };
  apply(cfg->global);
  for (const auto& section : cfg->pools)
    if (section.name.rfind("PATH=", 0) != 0 && section.name.rfind("HOST=", 0) != 0) apply(section);
  return {};
}

OpcacheSettings pool_opcache(OpcacheSettings s, const wire::FpmSection& pool) {
  for (const auto& d : pool.directives) {
    for (const char* kind : {"php_admin_value[", "php_admin_flag[", "php_value[", "php_flag["}) {
      std::string_view k = kind;
      if (d.key.size() <= k.size() + 1 || d.key.compare(0, k.size(), k) != 0 || d.key.back() != ']') continue;
      std::string name = d.key.substr(k.size(), d.key.size() - k.size() - 1);
      apply_php_ini_setting(name, d.value, s);
      if (name == "opcache.file_cache") s.where = d.file + ":" + std::to_string(d.line);
    }
  }
  return s;
}

std::vector<std::string> judge_opcache(const wire::FpmSection& pool, const OpcacheSettings& s,
                                       const std::optional<sys::FileStat>& dir,
                                       const std::optional<sys::FileStat>& parent) {
  std::vector<std::string> w;
  if (!s.known || !s.loaded || !s.enabled) return w;
  const std::string who = "php-fpm pool [" + pool.name + "]: ";
  if (s.file_cache.empty()) {
    w.push_back(who +
                "opcache keeps no file cache, so every wake compiles the site's scripts again (set "
                "php_admin_value[opcache.file_cache] to a directory of the pool's user's alone, mode 0700; "
                "idlepoolctl adopt does that for the pools it adopts)");
    return w;
  }
  const std::string cache = "opcache.file_cache " + s.file_cache + (s.where.empty() ? "" : " (" + s.where + ")");
  if (!dir || !S_ISDIR(dir->mode)) {
    w.push_back(who + cache + " is not a directory: nothing is kept across stops");
    return w;
  }
  const std::string user = pool.get("user").value_or("");
  if ((dir->mode & 022) != 0) {
    w.push_back(who + cache + " can be written by users other than " + dir->user + " (mode " + octal_mode(dir->mode) +
                "): another site could put code there that this pool runs (make it " +
                (user.empty() ? dir->user : user) + "'s alone, mode 0700)");
  } else if (!user.empty() && dir->user != user && dir->uid != 0) {
    w.push_back(who + cache + " belongs to " + dir->user + ", not to the pool's user " + user + ": " + dir->user +
                " can put code there that this pool runs");
  } else if (!user.empty() && user != "root" && dir->uid == 0) {
    w.push_back(who + cache + " belongs to root: the pool's user " + user +
                " cannot write it, so nothing is kept across stops");
  }
  if (parent && (parent->mode & 022) != 0 && (parent->mode & S_ISVTX) == 0)
    w.push_back(who + "the directory that holds " + cache + " can be written by users other than " + parent->user +
                " (mode " + octal_mode(parent->mode) + "): another site could put its own cache in its place");
  return w;
}

bool runs_php_fpm(const std::vector<std::vector<std::string>>& exec_start) {
  for (const auto& argv : exec_start)
    if (!argv.empty() && basename_of(argv[0]).rfind("php-fpm", 0) == 0) return true;
  return false;
}

FpmInvocation fpm_invocation(const std::vector<std::string>& argv) {
  FpmInvocation inv;
  for (size_t i = 1; i < argv.size(); ++i) {
    if (option_value(argv, i, "-y", "--fpm-config", inv.config)) continue;
    option_value(argv, i, "-p", "--prefix", inv.prefix);
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

// What the master's ini files say about opcache, or nothing known if they cannot be read.
OpcacheSettings PhpFpmKind::master_opcache(const std::vector<std::string>& argv) const {
  PhpIniFiles ini = php_ini_files(argv);
  if (ini.ini.empty() && ini.scan_dir.empty() && ini.defines.empty()) return {};
  std::vector<std::pair<std::string, std::optional<int64_t>>> stamps;
  auto stamp = [&](const std::string& path) {
    auto st = files_.stat(path);
    stamps.emplace_back(path, st ? std::optional<int64_t>(st->mtime_ns) : std::nullopt);
  };
  if (!ini.ini.empty()) stamp(ini.ini);  // PHP runs on its defaults without one
  if (!ini.scan_dir.empty())
    if (auto found = files_.glob(ini.scan_dir + "/*.ini"))
      for (const auto& path : *found) stamp(path);
  std::string key = ini.ini + "\n" + ini.scan_dir;
  for (const auto& [k, v] : ini.defines) key += "\n" + k + "=" + v;
  if (auto it = ini_reads_.find(key); it != ini_reads_.end() && it->second.stamps == stamps) return it->second.settings;

  OpcacheSettings s;
  for (const auto& [path, time] : stamps) {
    if (!time) continue;
    auto text = files_.read(path);
    if (!text) continue;
    if (!apply_php_ini(*text, path, s)) return {};
  }
  for (const auto& [k, v] : ini.defines) {
    apply_php_ini_setting(k, v, s);
    if (k == "opcache.file_cache") s.where = "-d on its command line";
  }
  s.known = true;
  if (ini_reads_.size() >= kMaxIniReads) ini_reads_.clear();
  ini_reads_[key] = {std::move(stamps), s};
  return s;
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
  const OpcacheSettings opcache = master_opcache(*argv);
  for (const auto& pool : cfg->pools) {
    judge_listen(pool, in, v);
    if (pool.get("pm") == "ondemand") v.nudge_on_stall = true;
    const OpcacheSettings mine = pool_opcache(opcache, pool);
    std::optional<sys::FileStat> dir, parent;
    if (mine.known && mine.loaded && mine.enabled && !mine.file_cache.empty() && mine.file_cache.front() == '/') {
      dir = files_.stat(mine.file_cache);
      parent = files_.stat(std::filesystem::path(mine.file_cache).parent_path().string());
    }
    for (auto& w : judge_opcache(pool, mine, dir, parent)) v.warnings.push_back(std::move(w));
  }
  judge_stop(s, *cfg, in, v);
  return v;
}

std::unique_ptr<ServiceKind> make_php_fpm_kind(sys::FileReader& files) { return std::make_unique<PhpFpmKind>(files); }

}  // namespace idlepool::kinds
