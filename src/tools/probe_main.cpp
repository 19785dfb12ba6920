// idlepool-probe: loads the kernel probe, registers the given listening sockets and prints what it counts.
// Operators use it to check what the probe sees on their host; the kernel tests use it as a black box.
#include <signal.h>
#include <time.h>

#include <boost/program_options.hpp>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "idlepool/core/address.h"
#include "idlepool/options_error.h"
#include "idlepool/sys/probe.h"
#include "idlepool/version.h"

namespace po = boost::program_options;
using idlepool::sys::ListenerSnapshot;
using idlepool::sys::Probe;
using idlepool::sys::TierReport;

namespace {

constexpr const char* kUsage =
    "Usage: idlepool-probe [OPTIONS] ADDRESS...\n"
    "Loads idlepool's kernel probe, registers the listening sockets at ADDRESS (127.0.0.1:8888, [::1]:9000,\n"
    "/run/php/site.sock, @abstract) and prints their counters and gauges every interval and once more at exit.\n";

uint64_t monotonic_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000ull + static_cast<uint64_t>(ts.tv_nsec);
}

nlohmann::json tiers_json(const TierReport& t) {
  return {{"loaded", to_string(t.loaded)},
          {"accepts", to_string(t.accepts)},
          {"requests", to_string(t.requests)},
          {"tcp_closes", to_string(t.tcp_closes)},
          {"unix_closes", to_string(t.unix_closes)}};
}

nlohmann::json snapshot_json(const ListenerSnapshot& s, const TierReport& t, uint64_t now_ns) {
  nlohmann::json j = {{"type", "listener"},
                      {"address", s.address.to_string()},
                      {"bound", s.listening ? nlohmann::json(s.bound.to_string()) : nlohmann::json(nullptr)},
                      {"listening", s.listening},
                      {"cookie", s.cookie},
                      {"inode", s.inode},
                      {"accepts", s.accepts},
                      {"requests", s.requests ? nlohmann::json(*s.requests) : nlohmann::json(nullptr)},
                      {"closes", s.closes ? nlohmann::json(*s.closes) : nlohmann::json(nullptr)},
                      {"active", s.active},
                      {"backlog", s.backlog},
                      {"last_activity_ns", s.last_activity_ns},
                      {"now_ns", now_ns},
                      {"tiers", tiers_json(t)}};
  j["idle_seconds"] = s.last_activity_ns ? nlohmann::json(static_cast<double>(now_ns - s.last_activity_ns) / 1e9)
                                         : nlohmann::json(nullptr);
  return j;
}

void print_table(const std::vector<ListenerSnapshot>& snaps, const TierReport& t, uint64_t now_ns) {
  std::printf("%-28s %-9s %9s %9s %7s %7s %7s %10s\n", "ADDRESS", "LISTENING", "ACCEPTS", "REQUESTS", "CLOSES",
              "ACTIVE", "BACKLOG", "IDLE");
  for (const auto& s : snaps) {
    std::string requests = s.requests ? std::to_string(*s.requests) : "n/a";
    std::string closes = s.closes ? std::to_string(*s.closes) : "n/a";
    std::string idle = "never";
    if (s.last_activity_ns) {
      char buf[32];
      std::snprintf(buf, sizeof(buf), "%.1fs", static_cast<double>(now_ns - s.last_activity_ns) / 1e9);
      idle = buf;
    }
    std::printf("%-28s %-9s %9llu %9s %7s %7u %7u %10s\n", s.address.to_string().c_str(), s.listening ? "yes" : "no",
                static_cast<unsigned long long>(s.accepts), requests.c_str(), closes.c_str(), s.active, s.backlog,
                idle.c_str());
  }
  std::printf("tiers: accepts=%s requests=%s tcp-closes=%s unix-closes=%s\n\n",
              std::string(to_string(t.accepts)).c_str(), std::string(to_string(t.requests)).c_str(),
              std::string(to_string(t.tcp_closes)).c_str(), std::string(to_string(t.unix_closes)).c_str());
  std::fflush(stdout);
}

bool emit(Probe& probe, bool json) {
  auto snaps = probe.read();
  if (!snaps) {
    std::cerr << "idlepool-probe: " << snaps.error().message << "\n";
    return false;
  }
  uint64_t now = monotonic_ns();
  if (json) {
    for (const auto& s : *snaps) std::cout << snapshot_json(s, probe.tiers(), now).dump() << "\n";
    std::cout.flush();
  } else {
    print_table(*snaps, probe.tiers(), now);
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  std::string tier_text = "auto";
  std::string btf_path;
  double interval = 1.0;
  double duration = 0.0;
  std::vector<std::string> addresses;
  po::options_description visible("Options");
  visible.add_options()("help,h", "show this help and exit")("version", "show the version and exit")(
      "tier", po::value(&tier_text)->default_value("auto"), "hook tier: auto, fentry, sock or syscall")(
      "json", "print one JSON object per line")("interval", po::value(&interval)->default_value(1.0),
                                                "seconds between reports")(
      "duration", po::value(&duration)->default_value(0.0), "seconds to run; 0 runs until SIGINT or SIGTERM")(
      "btf", po::value(&btf_path), "kernel BTF file (default /sys/kernel/btf/vmlinux)");
  po::options_description all;
  all.add(visible).add_options()("address", po::value(&addresses));
  po::positional_options_description positional;
  positional.add("address", -1);
  po::variables_map vm;
  try {
    po::store(po::command_line_parser(argc, argv).options(all).positional(positional).run(), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    std::cerr << "idlepool-probe: " << idlepool::describe(e) << "\n" << kUsage;
    return 2;
  }
  if (vm.count("help")) {
    std::cout << kUsage << "\n" << visible;
    return 0;
  }
  if (vm.count("version")) {
    std::cout << "idlepool-probe " << IDLEPOOL_VERSION << "\n";
    return 0;
  }
  if (addresses.empty()) {
    std::cerr << "idlepool-probe: no ADDRESS given\n" << kUsage;
    return 2;
  }
  if (!(interval > 0.0) || !std::isfinite(interval) || !(duration >= 0.0) || !std::isfinite(duration)) {
    std::cerr << "idlepool-probe: --interval must be > 0 and --duration >= 0 seconds\n";
    return 2;
  }
  std::vector<idlepool::SocketAddress> parsed;
  for (const auto& a : addresses) {
    auto addr = idlepool::parse_socket_address(a);
    if (!addr) {
      std::cerr << "idlepool-probe: " << addr.error().message << "\n";
      return 2;
    }
    parsed.push_back(*addr);
  }
  auto tier = idlepool::sys::parse_tier_choice(tier_text);
  if (!tier) {
    std::cerr << "idlepool-probe: " << tier.error().message << "\n";
    return 2;
  }

  // Signals are taken synchronously with sigtimedwait below; block them before anything else runs.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  sigprocmask(SIG_BLOCK, &stop_signals, nullptr);

  idlepool::sys::ProbeOptions options;
  options.tier = *tier;
  if (!btf_path.empty()) options.btf_path = btf_path;
  auto probe = Probe::load(options);
  if (!probe) {
    std::cerr << "idlepool-probe: " << probe.error().message << "\n";
    return 1;
  }
  const auto& tiers = (*probe)->tiers();
  std::cerr << "idlepool-probe: loaded at tier " << to_string(tiers.loaded) << "\n";
  for (const auto& p : tiers.passed_over) std::cerr << "idlepool-probe: passed over " << p << "\n";
  bool json = vm.count("json") > 0;
  if (json) {
    nlohmann::json hello = {{"type", "probe"}, {"tiers", tiers_json(tiers)}, {"passed_over", tiers.passed_over}};
    std::cout << hello.dump() << "\n";
  }
  for (const auto& addr : parsed) {
    auto id = (*probe)->add(addr);
    if (!id) {
      std::cerr << "idlepool-probe: " << id.error().message << "\n";
      return 1;
    }
  }
  if (json) {
    std::cout << nlohmann::json{{"type", "ready"}}.dump() << "\n";
    std::cout.flush();
  }

  const uint64_t start = monotonic_ns();
  const uint64_t interval_ns = static_cast<uint64_t>(interval * 1e9);
  const uint64_t end = duration > 0 ? start + static_cast<uint64_t>(duration * 1e9) : UINT64_MAX;
  uint64_t next = start + interval_ns;
  for (;;) {
    uint64_t now = monotonic_ns();
    if (now >= end) break;
    uint64_t wake = std::min(next, end);
    if (now < wake) {
      uint64_t wait = wake - now;
      timespec ts{static_cast<time_t>(wait / 1'000'000'000ull), static_cast<long>(wait % 1'000'000'000ull)};
      int sig = sigtimedwait(&stop_signals, nullptr, &ts);
      if (sig == SIGINT || sig == SIGTERM) break;
      continue;
    }
    if (!emit(**probe, json)) return 1;
    next += interval_ns;
  }
  return emit(**probe, json) ? 0 : 1;
}
