#include "options.h"

#include <boost/program_options.hpp>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "idlepool/options_error.h"

namespace po = boost::program_options;

namespace idlepool::daemon {
namespace {

constexpr const char* kUsage =
    "Usage: idlepoold [OPTIONS]\n"
    "Stops idle socket-activated service pools (php-fpm) through systemd; their .socket units wake them again.\n";

po::options_description settings() {
  po::options_description d("Settings (also in the configuration file; the command line wins)");
  d.add_options()("idle-timeout", po::value<std::string>(),
                  "stop a pool after this long without accepts or requests (300s), or 'adaptive': a window "
                  "learnt from each pool's own silences")("adaptive-min", po::value<std::string>(),
                                                          "the shortest window idle-timeout = adaptive chooses (60s)")(
      "adaptive-max", po::value<std::string>(), "the longest window idle-timeout = adaptive chooses (1h)")(
      "adaptive-fallback", po::value<std::string>(),
      "the window while a pool's history is too short to say (300s, within adaptive-min and adaptive-max)")(
      "adaptive-min-samples", po::value<uint32_t>(), "silences a pool's history needs before it is used (8)")(
      "adaptive-cold-start-cost", po::value<std::string>(),
      "what a visitor's cold start is worth in time a pool is kept running: the window that costs least for a "
      "pool's silences is chosen (300s)")(
      "prewarm", po::value<bool>()->implicit_value(true),
      "with idle-timeout = adaptive: start a pool whose silences are regular (a cron, a monitoring check) shortly "
      "before its next request is due (false)")("max-prewarming", po::value<uint32_t>(),
                                                "pools pre-warmed at once, at most (4)")(
      "state-file", po::value<std::string>(),
      "where the pools' learnt rhythms are kept across restarts (/var/lib/idlepool/rhythm.json; empty: nowhere)")(
      "min-uptime", po::value<std::string>(), "never stop a pool that has been up less than this (30s)")(
      "stall-timeout", po::value<std::string>(),
      "connections queued this long with none accepted and no worker: "
      "nudge php-fpm ondemand pools, report others (5s; 0: off)")(
      "unit-pattern", po::value<std::vector<std::string>>(),
      "manage services matching this glob (repeatable; "
      "default idlepool-php*-fpm@*.service, php*-fpm@*.service and php*-fpm.service)")(
      "unit", po::value<std::vector<std::string>>(), "manage this service (repeatable)")(
      "pin", po::value<std::vector<std::string>>(), "never stop this service (repeatable)")(
      "stop-method", po::value<std::string>(), "bus (StopUnit over D-Bus) or systemctl (systemctl stop --no-block)")(
      "max-stops-per-second", po::value<double>(), "global limit on stops (2)")(
      "stop-burst", po::value<double>(), "stops allowed at once before the limit applies (4)")(
      "dry-run", po::value<bool>()->implicit_value(true), "log the stops instead of doing them")(
      "allow-abrupt-stop", po::value<bool>()->implicit_value(true),
      "also stop pools whose stop may cut requests in flight (php-fpm with SIGTERM or process_control_timeout = 0)")(
      "keepalive-connections", po::value<std::string>(),
      "idle connections a web server keeps open to a pool (nginx's upstream keepalive): wait for it to close them "
      "before a stop, or close them with the stop (a POST nginx sends on one in that instant fails) (wait)")(
      "probe-tier", po::value<std::string>(), "kernel probe hooks: auto, fentry, sock or syscall")(
      "log-level", po::value<std::string>(), "trace, debug, info, warn or error (info)")(
      "control-socket", po::value<std::string>(), "idlepoolctl's socket (/run/idlepool/control.sock)")(
      "control-group", po::value<std::string>(), "group allowed to use the control socket (default: root only)")(
      "metrics-listen", po::value<std::string>(),
      "Prometheus metrics on IP:PORT ([::1]:PORT for IPv6), or off "
      "(127.0.0.1:10071)")(
      "metrics-token-file", po::value<std::string>(),
      "a file (root's, mode 0640 or stricter) holding the bearer token a scrape must send (default: none)");
  return d;
}

// The line of `file` where `key` is set (for error messages), or 0.
int line_of(const std::string& text, const std::string& key) {
  std::istringstream in(text);
  std::string line;
  int n = 0;
  std::string section;
  for (; std::getline(in, line);) {
    ++n;
    auto first = line.find_first_not_of(" \t");
    if (first == std::string::npos) continue;
    if (line[first] == '[') {
      section = line.substr(first + 1, line.find(']') - first - 1);
      continue;
    }
    std::string k = line.substr(first, line.find('=') - first);
    while (!k.empty() && (k.back() == ' ' || k.back() == '\t')) k.pop_back();
    std::string full = section.empty() ? k : section + "." + k;
    if (full == key || k == key) return n;
  }
  return 0;
}

std::string where(const std::string& path, const std::string& text, const std::string& key) {
  int n = line_of(text, key);
  return n ? path + ":" + std::to_string(n) + ": " : path + ": ";
}

Result<std::chrono::seconds> duration_setting(const po::variables_map& vm, const char* name) {
  auto d = parse_duration(vm[name].as<std::string>());
  if (!d) return Error{std::string(name) + ": " + d.error().message, EINVAL};
  return *d;
}

Result<void> apply_pool_setting(DaemonConfig& config, const std::string& option, const std::string& value) {
  // "pool php8.2-fpm@site.service.idle-timeout" -> unit "php8.2-fpm@site.service", key "idle-timeout"
  std::string rest = option.substr(5);
  size_t dot = rest.rfind('.');
  if (dot == std::string::npos) return Error{"malformed pool setting '" + option + "'", EINVAL};
  std::string unit = rest.substr(0, dot), key = rest.substr(dot + 1);
  auto& o = config.pools[unit];
  if (key == "idle-timeout" && value == "adaptive") {
    o.adaptive = true;
    return {};
  }
  if (key == "idle-timeout") o.adaptive = false;
  if (key == "adaptive-min" || key == "adaptive-max") {
    auto d = parse_duration(value);
    if (!d) return Error{"[pool " + unit + "] " + key + ": " + d.error().message, EINVAL};
    (key == "adaptive-min" ? o.adaptive_min : o.adaptive_max) = *d;
    return {};
  }
  if (key == "idle-timeout" || key == "min-uptime" || key == "stall-timeout") {
    auto d = parse_duration(value);
    if (!d) return Error{"[pool " + unit + "] " + key + ": " + d.error().message, EINVAL};
    (key == "idle-timeout" ? o.idle_timeout : key == "min-uptime" ? o.min_uptime : o.stall_timeout) = *d;
    return {};
  }
  if (key == "keepalive-connections") {
    auto k = parse_kept_alive(value);
    if (!k) return Error{"[pool " + unit + "] " + key + ": '" + value + "' is not wait or close", EINVAL};
    o.kept_alive = *k;
    return {};
  }
  if (key == "pin" || key == "allow-abrupt-stop" || key == "prewarm") {
    bool on = false;
    if (value == "true" || value == "yes" || value == "1") {
      on = true;
    } else if (value != "false" && value != "no" && value != "0") {
      return Error{"[pool " + unit + "] " + key + ": '" + value + "' is not true or false", EINVAL};
    }
    (key == "pin" ? o.pin : key == "prewarm" ? o.prewarm : o.allow_abrupt_stop) = on;
    return {};
  }
  return Error{"[pool " + unit + "]: unknown setting '" + key +
                   "' (known: idle-timeout, adaptive-min, adaptive-max, prewarm, min-uptime, stall-timeout, pin, "
                   "allow-abrupt-stop, keepalive-connections)",
               EINVAL};
}

}  // namespace

Result<Invocation> parse_invocation(const std::vector<std::string>& args) {
  Invocation inv;
  po::options_description general("Options");
  general.add_options()("help,h", "show this help and exit")("version", "show the version and exit")(
      "config", po::value<std::string>(), "configuration file (default /etc/idlepool/idlepool.conf)")(
      "check-config", "check the configuration and exit (0 if valid)");
  // Not in --help: the settings one per line (NAME, TAB, ARGUMENT, TAB, DESCRIPTION), from which the man page
  // idlepool.conf(5) is generated, so that it says what --help says.
  po::options_description hidden;
  hidden.add_options()("help-settings", "");
  po::options_description all;
  all.add(general).add(settings());
  std::ostringstream usage;
  usage << kUsage << "\n" << all;
  inv.usage = usage.str();
  all.add(hidden);

  po::variables_map vm;
  try {
    std::vector<std::string> rest(args.begin() + (args.empty() ? 0 : 1), args.end());
    po::store(po::command_line_parser(rest).options(all).run(), vm);
  } catch (const po::error& e) {
    return Error{describe(e), EINVAL};
  }
  if (vm.count("help-settings")) {
    std::ostringstream table;
    const po::options_description described = settings();
    for (const auto& o : described.options())
      table << o->long_name() << "\t" << o->format_parameter() << "\t" << o->description() << "\n";
    inv.settings_table = table.str();
    inv.help = true;
    inv.usage = inv.settings_table;
    return inv;
  }
  inv.help = vm.count("help") > 0;
  inv.version = vm.count("version") > 0;
  inv.check_config = vm.count("check-config") > 0;
  inv.config_path = vm.count("config") ? vm["config"].as<std::string>() : kDefaultConfigPath;
  if (inv.help || inv.version) return inv;

  std::string text;
  std::error_code ec;
  if (std::filesystem::exists(inv.config_path, ec)) {
    std::ifstream in(inv.config_path);
    if (!in) return Error{"cannot read " + inv.config_path, EACCES};
    text.assign(std::istreambuf_iterator<char>(in), {});
    inv.config_file_found = true;
  } else if (vm.count("config")) {
    return Error{"configuration file " + inv.config_path + " does not exist", ENOENT};
  }

  DaemonConfig& c = inv.config;
  // parsed_options points at its description: it must outlive the parse (store() reads it).
  const po::options_description file_options = settings();
  if (inv.config_file_found) {
    std::istringstream in(text);
    po::parsed_options parsed(nullptr);
    try {
      parsed = po::parse_config_file(in, file_options, /*allow_unregistered=*/true);
    } catch (const po::error& e) {
      return Error{inv.config_path + ": " + describe(e), EINVAL};
    }
    for (const auto& opt : parsed.options) {
      if (!opt.unregistered) continue;
      const std::string& name = opt.string_key;
      std::string value = opt.value.empty() ? "" : opt.value.front();
      if (name.rfind("pool ", 0) == 0) {
        if (auto r = apply_pool_setting(c, name, value); !r)
          return Error{where(inv.config_path, text, name) + r.error().message, EINVAL};
        continue;
      }
      return Error{where(inv.config_path, text, name) + "unknown setting '" + name + "'", EINVAL};
    }
    try {
      po::store(parsed, vm);                         // after the command line: the command line wins
    } catch (const po::error_with_option_name& e) {  // a bad value, a setting given twice: named with its line
      std::string key = e.get_option_name();
      key.erase(0, key.find_first_not_of('-'));
      return Error{where(inv.config_path, text, key) + describe(e), EINVAL};
    } catch (const po::error& e) {
      return Error{inv.config_path + ": " + describe(e), EINVAL};
    }
  }
  try {
    po::notify(vm);
  } catch (const po::error& e) {
    return Error{describe(e), EINVAL};
  }

  // Values were checked for type by Boost; now their meaning, with the line when it came from the file.
  auto fail = [&](const std::string& key, const Error& e) {
    bool from_file = inv.config_file_found && line_of(text, key) > 0;
    return Error{(from_file ? where(inv.config_path, text, key) : std::string("--") + key + ": ") + e.message, EINVAL};
  };
  if (vm.count("idle-timeout")) {
    if (vm["idle-timeout"].as<std::string>() == "adaptive") {
      c.defaults.adaptive.on = true;
    } else {
      auto d = duration_setting(vm, "idle-timeout");
      if (!d) return fail("idle-timeout", Error{d.error().message + " (or adaptive)"});
      c.defaults.idle_timeout = *d;
    }
  }
  for (auto [key, field] :
       {std::pair{"adaptive-min", &AdaptiveSettings::min}, std::pair{"adaptive-max", &AdaptiveSettings::max},
        std::pair{"adaptive-fallback", &AdaptiveSettings::fallback},
        std::pair{"adaptive-cold-start-cost", &AdaptiveSettings::cold_start_cost}}) {
    if (!vm.count(key)) continue;
    auto d = duration_setting(vm, key);
    if (!d) return fail(key, d.error());
    c.defaults.adaptive.*field = *d;
  }
  if (vm.count("adaptive-min-samples")) c.defaults.adaptive.min_samples = vm["adaptive-min-samples"].as<uint32_t>();
  if (vm.count("prewarm")) c.defaults.adaptive.prewarm = vm["prewarm"].as<bool>();
  if (vm.count("max-prewarming")) c.max_prewarming = vm["max-prewarming"].as<uint32_t>();
  if (vm.count("state-file")) c.state_file = vm["state-file"].as<std::string>();
  if (vm.count("min-uptime")) {
    auto d = duration_setting(vm, "min-uptime");
    if (!d) return fail("min-uptime", d.error());
    c.defaults.min_uptime = *d;
  }
  if (vm.count("stall-timeout")) {
    auto d = duration_setting(vm, "stall-timeout");
    if (!d) return fail("stall-timeout", d.error());
    c.defaults.stall_timeout = *d;
  }
  if (vm.count("unit-pattern")) c.unit_patterns = vm["unit-pattern"].as<std::vector<std::string>>();
  if (vm.count("unit")) c.units = vm["unit"].as<std::vector<std::string>>();
  if (vm.count("pin")) c.pinned = vm["pin"].as<std::vector<std::string>>();
  if (vm.count("stop-method")) {
    auto m = vm["stop-method"].as<std::string>();
    if (m == "bus") {
      c.stop_method = StopMethod::kBus;
    } else if (m == "systemctl") {
      c.stop_method = StopMethod::kSystemctl;
    } else {
      return fail("stop-method", Error{"'" + m + "' is not bus or systemctl"});
    }
  }
  if (vm.count("max-stops-per-second")) c.max_stops_per_second = vm["max-stops-per-second"].as<double>();
  if (vm.count("stop-burst")) c.stop_burst = vm["stop-burst"].as<double>();
  if (vm.count("dry-run")) c.dry_run = vm["dry-run"].as<bool>();
  if (vm.count("allow-abrupt-stop")) c.allow_abrupt_stop = vm["allow-abrupt-stop"].as<bool>();
  if (vm.count("keepalive-connections")) {
    auto k = parse_kept_alive(vm["keepalive-connections"].as<std::string>());
    if (!k)
      return fail("keepalive-connections",
                  Error{"'" + vm["keepalive-connections"].as<std::string>() + "' is not wait or close"});
    c.defaults.kept_alive = *k;
  }
  if (vm.count("probe-tier")) c.probe_tier = vm["probe-tier"].as<std::string>();
  if (vm.count("log-level")) c.log_level = vm["log-level"].as<std::string>();
  if (vm.count("control-socket")) c.control_socket = vm["control-socket"].as<std::string>();
  if (vm.count("control-group")) c.control_group = vm["control-group"].as<std::string>();
  if (vm.count("metrics-listen")) c.metrics_listen = vm["metrics-listen"].as<std::string>();
  if (vm.count("metrics-token-file")) c.metrics_token_file = vm["metrics-token-file"].as<std::string>();
  if (auto v = validate(c); !v) {
    // Name the line of the setting the message is about, when the file set it.
    for (const char* key : {"idle-timeout", "max-stops-per-second", "stop-burst", "log-level", "probe-tier",
                            "unit-pattern", "unit", "control-socket", "metrics-listen", "metrics-token-file",
                            "adaptive-min", "adaptive-max", "adaptive-min-samples", "state-file"})
      if (v.error().message.rfind(key, 0) == 0 || v.error().message.find(std::string(key) + " '") != std::string::npos)
        return fail(key, v.error());
    return Error{(inv.config_file_found ? inv.config_path + ": " : std::string()) + v.error().message, EINVAL};
  }
  return inv;
}

}  // namespace idlepool::daemon
