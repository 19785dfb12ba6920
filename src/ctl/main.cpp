// idlepoolctl: asks idlepoold, over its control socket, what it knows and does. Verbs as systemd's networkctl:
//   status (default)   a table of every pool          show POOL     everything about one pool
//   list               pool names                      check         stop safety of every pool (exit 1 if unsafe)
//   pin POOL / unpin POOL   never / again stop it      stop POOL     stop it now if that is safe
//   reload             reload idlepoold's configuration
//   adopt [POOL...]    move the shared php-fpm masters' pools to socket activation (a plan; --apply, --undo)
//   simulate LOG...    replay access logs through idlepool's policy: what fixed and adaptive idle timeouts would do
// Exit codes (as systemctl): 0 ok, 1 failure, 3 idlepoold not running, 4 unknown pool; 2 bad command line.
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <boost/program_options.hpp>
#include <cerrno>
#include <cstring>
#include <iostream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "adopt.h"
#include "idlepool/options_error.h"
#include "idlepool/sys/unique_fd.h"
#include "idlepool/version.h"
#include "idlepool/wire/control_protocol.h"
#include "idlepool/wire/status_json.h"
#include "render.h"
#include "simulate.h"

namespace po = boost::program_options;
using idlepool::wire::Verb;

namespace {

constexpr int kOk = 0, kFailure = 1, kUsage = 2, kNotRunning = 3, kUnknownPool = 4;

struct VerbSpec {
  const char* name;
  Verb verb;
  bool needs_pool;
  const char* help;
};
constexpr VerbSpec kVerbs[] = {
    {"status", Verb::kStatus, false, "show every pool (default)"},
    {"list", Verb::kList, false, "list pool names"},
    {"show", Verb::kShow, true, "show everything about POOL"},
    {"pin", Verb::kPin, true, "never stop POOL (until unpinned or idlepoold restarts)"},
    {"unpin", Verb::kUnpin, true, "let idlepoold stop POOL again"},
    {"stop", Verb::kStop, true, "stop POOL now if that is safe; refuse with the reason if not"},
    {"check", Verb::kCheck, false, "audit every pool's stop safety; exit 1 if any is unsafe"},
    {"reload", Verb::kReload, false, "reload idlepoold's configuration"},
};
// Not a question for idlepoold: works on this host's php-fpm configuration and systemd units.
constexpr const char* kAdoptHelp =
    "show how this host's php-fpm pools (every /etc/php/*/fpm/php-fpm.conf) would each move to a socket-activated "
    "master idlepoold can stop, on their original addresses; --apply does it, --undo puts them back";

std::string usage(const po::options_description& options) {
  std::ostringstream o;
  o << "Usage: idlepoolctl [OPTIONS] [VERB] [POOL]\nAsks idlepoold what it knows about its pools.\n\nVerbs:\n";
  for (const auto& v : kVerbs)
    o << "  " << v.name << (v.needs_pool ? " POOL" : "")
      << std::string(12 - std::strlen(v.name) - (v.needs_pool ? 5 : 0), ' ') << v.help << "\n";
  o << "  adopt [POOL...]  " << kAdoptHelp << "\n";
  o << "  simulate LOG...  replay web server access logs (combined, vhost_combined) or TIME POOL lines through "
       "idlepool's policy: pool-hours and cold starts under fixed idle timeouts and the adaptive window\n";
  o << "\n" << options;
  return o.str();
}

struct Reply {
  int exit_code = kOk;
  std::string line;
};

// One request, one response line.
Reply ask(const std::string& socket_path, const std::string& request) {
  idlepool::sys::UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_un sun{};
  sun.sun_family = AF_UNIX;
  if (socket_path.size() >= sizeof(sun.sun_path)) {
    std::cerr << "idlepoolctl: socket path too long: " << socket_path << "\n";
    return {kUsage, {}};
  }
  std::memcpy(sun.sun_path, socket_path.c_str(), socket_path.size());
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&sun), sizeof(sun)) != 0) {
    int err = errno;
    if (err == ENOENT || err == ECONNREFUSED) {
      std::cerr << "idlepoolctl: idlepoold is not running (nothing answers on " << socket_path << ")\n";
      return {kNotRunning, {}};
    }
    std::cerr << "idlepoolctl: cannot connect to " << socket_path << ": " << std::strerror(err)
              << (err == EACCES ? " (root, or the control group, may use it)" : "") << "\n";
    return {kFailure, {}};
  }
  size_t off = 0;
  while (off < request.size()) {
    ssize_t n = ::send(fd.get(), request.data() + off, request.size() - off, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      std::cerr << "idlepoolctl: cannot send to idlepoold: " << std::strerror(errno) << "\n";
      return {kFailure, {}};
    }
    off += static_cast<size_t>(n);
  }
  std::string line;
  char buf[65536];
  for (;;) {
    pollfd p{fd.get(), POLLIN, 0};
    if (::poll(&p, 1, 30000) == 0) {
      std::cerr << "idlepoolctl: idlepoold did not answer within 30 s\n";
      return {kFailure, {}};
    }
    ssize_t n = ::recv(fd.get(), buf, sizeof(buf), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    line.append(buf, static_cast<size_t>(n));
  }
  return {kOk, line};
}

}  // namespace

int main(int argc, char** argv) {
  std::string json_mode = "off", socket_path = "/run/idlepool/control.sock";
  std::vector<std::string> words;
  po::options_description visible("Options");
  visible.add_options()("help,h", "show this help and exit")("version", "show the version and exit")(
      "json", po::value(&json_mode)->implicit_value("pretty"), "print JSON: pretty, short or off")(
      "no-legend", "print no header and footer")("socket", po::value(&socket_path), "idlepoold's control socket")(
      "apply", "adopt: carry the plan out")("undo", "adopt: put the adopted pools (all, or those named) back")(
      "sync", po::value<std::string>()->value_name("VERSION"),
      "adopt: keep adopted pools out of phpVERSION-fpm (run by that service before it starts or reloads)")(
      "format", po::value<std::string>()->default_value("auto"), "simulate: auto, combined or timestamps")(
      "pool-by", po::value<std::string>()->default_value("auto"),
      "simulate: what a request's pool is: file (one log per site), vhost (vhost_combined), prefix (--prefix); auto: "
      "prefix if given, else vhost if the lines carry one, else file")(
      "prefix", po::value<std::vector<std::string>>()->value_name("PATH=POOL"),
      "simulate: requests under PATH belong to POOL (repeatable; the longest match wins)")(
      "memory", po::value<double>()->default_value(40), "simulate: a running pool's memory, MiB")(
      "cold-start-cost", po::value<std::string>()->default_value("5m"),
      "simulate: adaptive-cold-start-cost, as in idlepool.conf")(
      "adaptive-min", po::value<std::string>()->default_value("1m"), "simulate: adaptive-min")(
      "adaptive-max", po::value<std::string>()->default_value("1h"), "simulate: adaptive-max");
  po::options_description all;
  all.add(visible).add_options()("words", po::value(&words));
  po::positional_options_description positional;
  positional.add("words", -1);
  po::variables_map vm;
  try {
    po::store(po::command_line_parser(argc, argv).options(all).positional(positional).run(), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    std::cerr << "idlepoolctl: " << idlepool::describe(e) << "\n";
    return kUsage;
  }
  if (vm.count("help")) {
    std::cout << usage(visible);
    return kOk;
  }
  if (vm.count("version")) {
    std::cout << "idlepoolctl " << IDLEPOOL_VERSION << "\n";
    return kOk;
  }
  if (json_mode != "off" && json_mode != "pretty" && json_mode != "short") {
    std::cerr << "idlepoolctl: --json takes pretty, short or off, not '" << json_mode << "'\n";
    return kUsage;
  }
  std::string verb_name = words.empty() ? "status" : words[0];
  if (verb_name == "simulate") {
    idlepool::ctl::SimulateRequest sim;
    sim.files.assign(words.begin() + 1, words.end());
    sim.format = vm["format"].as<std::string>();
    sim.pool_by = vm["pool-by"].as<std::string>();
    if (vm.count("prefix"))
      for (const auto& p : vm["prefix"].as<std::vector<std::string>>()) {
        auto eq = p.find('=');
        if (eq == std::string::npos || eq == 0 || p[0] != '/' || eq + 1 == p.size()) {
          std::cerr << "idlepoolctl simulate: --prefix takes /PATH=POOL, not '" << p << "'\n";
          return kUsage;
        }
        sim.prefixes[p.substr(0, eq)] = p.substr(eq + 1);
      }
    sim.memory_mib = vm["memory"].as<double>();
    sim.cold_start_cost = vm["cold-start-cost"].as<std::string>();
    sim.adaptive_min = vm["adaptive-min"].as<std::string>();
    sim.adaptive_max = vm["adaptive-max"].as<std::string>();
    return idlepool::ctl::run_simulate(sim, std::cout, std::cerr);
  }
  if (verb_name == "adopt" || vm.count("sync")) {
    idlepool::ctl::AdoptRequest adopt;
    if (!words.empty()) adopt.pools.assign(words.begin() + 1, words.end());
    adopt.apply = vm.count("apply") > 0;
    adopt.undo = vm.count("undo") > 0;
    if (vm.count("sync")) adopt.sync_version = vm["sync"].as<std::string>();
    if (adopt.apply && adopt.undo) {
      std::cerr << "idlepoolctl: adopt takes --apply or --undo, not both\n";
      return kUsage;
    }
    return idlepool::ctl::run_adopt(adopt);
  }
  if (vm.count("apply") || vm.count("undo")) {
    std::cerr << "idlepoolctl: --apply and --undo belong to adopt\n";
    return kUsage;
  }
  const VerbSpec* spec = nullptr;
  for (const auto& v : kVerbs)
    if (verb_name == v.name) spec = &v;
  if (!spec) {
    std::cerr << "idlepoolctl: unknown verb '" << verb_name << "'\n" << usage(visible);
    return kUsage;
  }
  size_t args = words.empty() ? 0 : words.size() - 1;
  if (spec->needs_pool ? args != 1 : args != 0) {
    std::cerr << "idlepoolctl: " << spec->name << (spec->needs_pool ? " takes one POOL" : " takes no argument") << "\n";
    return kUsage;
  }
  idlepool::wire::ControlRequest request{spec->verb, spec->needs_pool ? words[1] : std::string()};
  Reply reply = ask(socket_path, idlepool::wire::encode_control_request(request));
  if (reply.exit_code != kOk) return reply.exit_code;
  auto response = idlepool::wire::parse_control_response(reply.line);
  if (!response) {
    std::cerr << "idlepoolctl: " << response.error().message << "\n";
    return kFailure;
  }
  if (!response->ok) {
    const auto& e = response->error;
    if (json_mode != "off") {
      nlohmann::json j = {
          {"ok", false}, {"code", std::string(idlepool::wire::to_string(e.code))}, {"error", e.message}};
      std::cout << (json_mode == "pretty" ? j.dump(2) : j.dump()) << "\n";
    }
    std::cerr << "idlepoolctl: " << e.message << "\n";
    return e.code == idlepool::wire::ErrorCode::kUnknownPool ? kUnknownPool : kFailure;
  }
  const auto& result = response->result;
  if (json_mode != "off") {
    std::cout << (json_mode == "pretty" ? result.dump(2) : result.dump()) << "\n";
    if (spec->verb == Verb::kCheck) {
      auto ok = result.find("ok");
      return ok != result.end() && ok->is_boolean() && ok->get<bool>() ? kOk : kFailure;
    }
    return kOk;
  }
  idlepool::ctl::RenderOptions options;
  options.legend = vm.count("no-legend") == 0;
  // The answer is decoded into the typed model first: a malformed one is said so, never half-rendered.
  auto bad_answer = [](const idlepool::Error& e) {
    std::cerr << "idlepoolctl: idlepoold's answer: " << e.message << "\n";
    return kFailure;
  };
  switch (spec->verb) {
    case Verb::kStatus: {
      auto model = idlepool::wire::status_from_json(result);
      if (!model) return bad_answer(model.error());
      std::cout << idlepool::ctl::render_status(*model, options);
      break;
    }
    case Verb::kShow: {
      idlepool::MonoTime now{0};
      auto pool = idlepool::wire::pool_from_json(result, &now);
      if (!pool) return bad_answer(pool.error());
      std::cout << idlepool::ctl::render_show(*pool, now);
      break;
    }
    case Verb::kList: {
      std::vector<std::string> names;
      const auto pools = result.find("pools");
      if (pools == result.end() || !pools->is_array()) return bad_answer({"\"pools\" is not a list", EBADMSG});
      for (const auto& n : *pools) {
        if (!n.is_string()) return bad_answer({"\"pools\" holds something that is not a name", EBADMSG});
        names.push_back(n.get<std::string>());
      }
      std::cout << idlepool::ctl::render_list(names, options);
      break;
    }
    case Verb::kCheck: {
      auto audits = idlepool::wire::audits_from_json(result);
      if (!audits) return bad_answer(audits.error());
      std::cout << idlepool::ctl::render_check(*audits, options);
      for (const auto& line : idlepool::ctl::unadopted_pools()) std::cout << line << "\n";
      for (const auto& a : *audits)
        if (!a.ok()) return kFailure;
      return kOk;
    }
    case Verb::kPin:
    case Verb::kUnpin:
      std::cout << request.pool << (spec->verb == Verb::kPin ? " pinned" : " unpinned") << "\n";
      break;
    case Verb::kStop:
    case Verb::kReload: {
      auto message = result.find("message");
      std::cout << (message != result.end() && message->is_string() ? message->get<std::string>() : "done") << "\n";
      break;
    }
  }
  return kOk;
}
