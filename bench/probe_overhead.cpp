// What the probe costs, measured A/B in one run: every round measures each configuration once (no probe, then the
// probe at each tier) in a rotating order, and the medians over rounds are compared. These machines are noisy: read
// the ratios, not the absolute figures.
//
//   read      a tight read() loop on /dev/zero: syscalls unrelated to sockets, which no hook should tax
//   echo      request/response cycles over a kept-alive unix connection to a local worker (the probe's worst case:
//             its hooks fire on every receive and send, and the work per request is tiny)
//   unix-pair, tcp-pair
//             sockets that belong to no pool (what MySQL, Redis or memcached traffic looks like to the probe): 32 bytes
//             sent on one end of a unix socketpair (a loopback TCP connection) and received on the other, in one
//             process; no pool's socket is anywhere near them
//
// The benchmark pins itself and the servers it starts to one CPU (--cpu): on these VMs a wake-up across CPUs costs
// tens of microseconds and lands at random, which swamps what is measured here.
//
// Usage: idlepool_bench_probe [--rounds N] [--reads N] [--requests N] [--php-requests N] [--tiers LIST]
//                             [--parts read,echo,unix-pair,tcp-pair,php,php-page]
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <boost/program_options.hpp>
#include <chrono>
#include <cstdio>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "bench_options.h"
#include "fastcgi_client.h"
#include "idlepool/sys/probe.h"
#include "php_fpm.h"
#include "test_server.h"

namespace po = boost::program_options;
using namespace idlepool;
using namespace idlepool::testing;

namespace {

using Clock = std::chrono::steady_clock;

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  for (std::string x; std::getline(ss, x, ',');)
    if (!x.empty()) out.push_back(x);
  return out;
}

// Loads the probe at `tier` with `addresses` registered, or nothing for "none".
std::unique_ptr<sys::Probe> load(const std::string& tier, const std::vector<SocketAddress>& addresses) {
  if (tier == "none") return nullptr;
  sys::ProbeOptions options;
  options.tier = *sys::parse_tier_choice(tier);
  auto p = sys::Probe::load(options);
  if (!p) {
    std::fprintf(stderr, "cannot load the probe at tier %s: %s\n", tier.c_str(), p.error().message.c_str());
    std::exit(1);
  }
  for (const auto& a : addresses)
    if (auto id = (*p)->add(a); !id) {
      std::fprintf(stderr, "cannot register %s: %s\n", a.to_string().c_str(), id.error().message.c_str());
      std::exit(1);
    }
  return std::move(*p);
}

// ns per read() of one byte from /dev/zero.
double time_reads(int fd, long reads) {
  char b;
  auto t0 = Clock::now();
  for (long i = 0; i < reads; ++i)
    if (::read(fd, &b, 1) != 1) std::abort();
  return std::chrono::duration<double, std::nano>(Clock::now() - t0).count() / static_cast<double>(reads);
}

// ns per send of 32 bytes on `a` and their receive on `b`.
double time_pair(int a, int b, long messages) {
  char out[32] = {}, in[32];
  auto t0 = Clock::now();
  for (long i = 0; i < messages; ++i) {
    if (::send(a, out, sizeof(out), 0) != sizeof(out)) std::abort();
    if (::recv(b, in, sizeof(in), MSG_WAITALL) != sizeof(in)) std::abort();
  }
  return std::chrono::duration<double, std::nano>(Clock::now() - t0).count() / static_cast<double>(messages);
}

// The two ends of a loopback TCP connection (Nagle off), through a listener that is closed again at once.
std::pair<int, int> tcp_pair() {
  int l = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(sa);
  if (l < 0 || ::bind(l, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) || ::listen(l, 1) ||
      ::getsockname(l, reinterpret_cast<sockaddr*>(&sa), &len))
    std::abort();
  int c = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (c < 0 || ::connect(c, reinterpret_cast<sockaddr*>(&sa), sizeof(sa))) std::abort();
  int s = ::accept4(l, nullptr, nullptr, SOCK_CLOEXEC);
  if (s < 0) std::abort();
  ::close(l);
  int one = 1;
  ::setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  ::setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  return {c, s};
}

// Request/response cycles per second on one kept-alive connection to the echo worker.
double time_echo(const SocketAddress& address, long requests) {
  Client c(address);
  c.request();  // connected and accepted before timing
  auto t0 = Clock::now();
  for (long i = 0; i < requests; ++i) c.request();
  return static_cast<double>(requests) / std::chrono::duration<double>(Clock::now() - t0).count();
}

double time_php(const SocketAddress& address, const std::string& script, long requests) {
  auto c = FastCgiClient::connect(address, true);
  if (!c || !c->request(script)) std::abort();
  auto t0 = Clock::now();
  for (long i = 0; i < requests; ++i) {
    auto r = c->request(script);
    if (!r || r->body() != "ok") {
      std::fprintf(stderr, "php-fpm request failed: %s\n", r ? r->stdout_data.c_str() : r.error().message.c_str());
      std::abort();
    }
  }
  return static_cast<double>(requests) / std::chrono::duration<double>(Clock::now() - t0).count();
}

struct Part {
  std::string name;
  std::string unit;
  bool higher_is_better;
  std::map<std::string, std::vector<double>> samples;  // configuration -> one figure per round
};

void report(const Part& part, const std::vector<std::string>& configs, const std::string& what) {
  std::printf("\n%s (%s, median of %zu rounds)\n", what.c_str(), part.unit.c_str(), part.samples.at(configs[0]).size());
  double base = median(part.samples.at("none"));
  for (const auto& c : configs) {
    double m = median(part.samples.at(c));
    if (c == "none") {
      std::printf("  %-8s %12.1f\n", c.c_str(), m);
    } else {
      double ratio = m / base;
      std::printf(
          "  %-8s %12.1f   ratio %.4f  (%s)\n", c.c_str(), m, ratio,
          part.higher_is_better ? "throughput with/without; 1.0 = no cost" : "time with/without; 1.0 = no cost");
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  int rounds = 15;
  long reads = 200000, requests = 20000, php_requests = 2000;
  std::string tiers_text = "auto", parts_text = "read,echo,unix-pair,tcp-pair,php,php-page";
  long page_requests = 300, messages = 200000;
  int cpu = 0;
  po::options_description opts("idlepool_bench_probe");
  opts.add_options()("rounds", po::value(&rounds)->default_value(15), "rounds")(
      "reads", po::value(&reads)->default_value(200000), "read() calls per round")(
      "requests", po::value(&requests)->default_value(20000), "echo cycles per round")(
      "php-requests", po::value(&php_requests)->default_value(2000), "php-fpm requests per round")(
      "tiers", po::value(&tiers_text)->default_value("auto"), "probe tiers to compare with no probe")(
      "parts", po::value(&parts_text)->default_value(parts_text), "which measurements")(
      "messages", po::value(&messages)->default_value(messages), "messages per round on the socket pairs")(
      "page-requests", po::value(&page_requests)->default_value(300), "php-page requests per round")(
      "cpu", po::value(&cpu)->default_value(0), "CPU to pin this process and its servers to; -1 does not pin");
  po::variables_map vm;
  if (auto done = idlepool::bench::parse_options(argc, argv, opts, vm)) return *done;
  std::vector<std::string> configs{"none"};
  for (const auto& t : split(tiers_text)) configs.push_back(t);
  auto parts = split(parts_text);
  auto wants = [&](const char* p) { return std::find(parts.begin(), parts.end(), p) != parts.end(); };

  if (cpu >= 0) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    if (sched_setaffinity(0, sizeof(set), &set) != 0) {
      std::perror("sched_setaffinity");
      return 1;
    }
  }
  utsname u{};
  uname(&u);
  std::printf("idlepool probe overhead: kernel %s, %ld CPUs (pinned to %d), %d rounds, configurations:", u.release,
              sysconf(_SC_NPROCESSORS_ONLN), cpu, rounds);
  for (const auto& c : configs) std::printf(" %s", c.c_str());
  std::printf("\n");
  {
    auto p = load(configs.size() > 1 ? configs[1] : "auto", {});
    if (p) std::printf("tier 'auto' here: %s\n", std::string(sys::to_string(p->tiers().loaded)).c_str());
  }

  TestServer echo(Family::kUnix);
  echo.start_workers(1);
  std::unique_ptr<PhpFpmPool> php;
  std::string php_script;
  std::string page_script;
  if (wants("php") || wants("php-page")) {
    php = std::make_unique<PhpFpmPool>();
    php_script = php->script("ok.php", "<?php echo 'ok';");
    page_script =
        php->script("page.php", "<?php $s = ''; for ($i = 0; $i < 4000; $i++) { $s = md5($s . $i); } echo 'ok';");
  }
  std::vector<SocketAddress> registered{echo.address()};
  if (php) registered.push_back(php->address());

  int zero = ::open("/dev/zero", O_RDONLY | O_CLOEXEC);
  int unix_ends[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, unix_ends)) std::abort();
  auto [tcp_a, tcp_b] = tcp_pair();
  Part unix_pair_part{"unix-pair", "ns per send+receive", false, {}};
  Part tcp_pair_part{"tcp-pair", "ns per send+receive", false, {}};
  Part read_part{"read", "ns per read()", false, {}};
  Part echo_part{"echo", "requests/s", true, {}};
  Part php_part{"php", "requests/s", true, {}};
  Part page_part{"php-page", "requests/s", true, {}};
  // Round -1 warms caches (and, under emulation, the translation cache) for every configuration; it is not recorded.
  for (int r = -1; r < rounds; ++r) {
    for (size_t k = 0; k < configs.size(); ++k) {
      const std::string& config = configs[(k + static_cast<size_t>(r + 1)) % configs.size()];
      auto probe = load(config, registered);
      auto keep = [&](Part& part, double figure) {
        if (r >= 0) part.samples[config].push_back(figure);
      };
      if (wants("read")) keep(read_part, time_reads(zero, reads));
      if (wants("echo")) keep(echo_part, time_echo(echo.address(), requests));
      if (wants("unix-pair")) keep(unix_pair_part, time_pair(unix_ends[0], unix_ends[1], messages));
      if (wants("tcp-pair")) keep(tcp_pair_part, time_pair(tcp_a, tcp_b, messages));
      if (wants("php")) keep(php_part, time_php(php->address(), php_script, php_requests));
      if (wants("php-page")) keep(page_part, time_php(php->address(), page_script, page_requests));
    }
    if (r >= 0) std::fprintf(stderr, "round %d/%d done\n", r + 1, rounds);
  }
  if (wants("read")) report(read_part, configs, "read() on /dev/zero, " + std::to_string(reads) + " per round");
  if (wants("echo"))
    report(echo_part, configs, "echo request/response, unix keep-alive, " + std::to_string(requests) + " per round");
  if (wants("unix-pair"))
    report(unix_pair_part, configs,
           "a unix socketpair of no pool, 32 bytes sent and received, " + std::to_string(messages) + " per round");
  if (wants("tcp-pair"))
    report(
        tcp_pair_part, configs,
        "a loopback TCP connection of no pool, 32 bytes sent and received, " + std::to_string(messages) + " per round");
  if (wants("php"))
    report(php_part, configs,
           "php-fpm FastCGI 'hello world', unix keep-alive, " + std::to_string(php_requests) + " per round");
  if (wants("php-page"))
    report(page_part, configs,
           "php-fpm FastCGI ~1 ms page, unix keep-alive, " + std::to_string(page_requests) + " per round");
  return 0;
}
