// How fast can idlepoold read a thousand units from systemd? Discovery reads, for each pool, its service unit and
// the .socket units that trigger it. This benchmark reads the same units several ways in one run, against the real
// systemd, and prints every round's time (the first contact with a unit can cost more than the next ones) and the
// median's ratio to the first way's:
//   idlepool           SdBus::read_services() + read_sockets(), as the daemon reads them (pipelined Get)
//   pipelined-get      Properties.Get of only the properties idlepool uses, up to --window in flight
//   serial-get         the same Get calls, one at a time
//   serial-getall      Properties.GetAll per interface, one call at a time (Unit + Service, Unit + Socket)
//   pipelined-getall   the GetAll calls, up to --window in flight
// The Get ways run first: GetAll on the Unit interface makes PID 1 compute UnitFileState (a walk of the unit
// directories, cached per unit afterwards), which only the first GetAll round pays.
// Usage: idlepool_bench_bus --pattern 'bench@*.service' [--rounds 3] [--window 32]
#include <systemd/sd-bus.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "bench_options.h"
#include "idlepool/sys/service_manager.h"

namespace {

constexpr const char* kSystemd = "org.freedesktop.systemd1";

struct Call {
  std::string path;
  const char* interface;
  const char* property;  // nullptr: GetAll
};

std::string unit_path(const std::string& unit) {
  char* path = nullptr;
  sd_bus_path_encode("/org/freedesktop/systemd1/unit", unit.c_str(), &path);
  std::string out(path ? path : "");
  free(path);
  return out;
}

struct Pending {
  size_t outstanding = 0;
  size_t failed = 0;
};

int on_reply(sd_bus_message* m, void* userdata, sd_bus_error*) {
  auto* p = static_cast<Pending*>(userdata);
  --p->outstanding;
  if (sd_bus_message_is_method_error(m, nullptr)) ++p->failed;
  return 1;
}

// Runs `calls` with at most `window` in flight; returns the number that failed.
size_t run(sd_bus* bus, const std::vector<Call>& calls, size_t window) {
  Pending p;
  size_t next = 0;
  while (next < calls.size() || p.outstanding > 0) {
    while (next < calls.size() && p.outstanding < window) {
      const Call& c = calls[next++];
      int r = c.property
                  ? sd_bus_call_method_async(bus, nullptr, kSystemd, c.path.c_str(), "org.freedesktop.DBus.Properties",
                                             "Get", on_reply, &p, "ss", c.interface, c.property)
                  : sd_bus_call_method_async(bus, nullptr, kSystemd, c.path.c_str(), "org.freedesktop.DBus.Properties",
                                             "GetAll", on_reply, &p, "s", c.interface);
      if (r < 0) {
        ++p.failed;
        continue;
      }
      ++p.outstanding;
    }
    int r = sd_bus_process(bus, nullptr);
    if (r < 0) return calls.size();
    if (r == 0) sd_bus_wait(bus, UINT64_MAX);
  }
  return p.failed;
}

// Runs `event` until `ask` has been answered: the bench waits for SdBus's asynchronous answers.
template <class T, class Ask>
T await(sd_event* event, Ask ask) {
  std::optional<T> answer;
  ask([&](T t) { answer = std::move(t); });
  while (!answer) sd_event_run(event, UINT64_MAX);
  return std::move(*answer);
}

}  // namespace

int main(int argc, char** argv) {
  namespace po = boost::program_options;
  po::options_description options("idlepool_bench_bus: reading units from systemd, several ways");
  options.add_options()("pattern", po::value<std::string>()->default_value("bench@*.service"), "service units to read")(
      "rounds", po::value<int>()->default_value(3), "rounds (the median is printed)")(
      "window", po::value<size_t>()->default_value(32), "calls in flight when pipelined");
  po::variables_map vm;
  if (auto code = idlepool::bench::parse_options(argc, argv, options, vm)) return *code;
  sd_event* event = nullptr;
  if (sd_event_new(&event) < 0) return 1;
  auto bus = idlepool::sys::SdBus::open(event, idlepool::sys::SdBus::StopVia::kBus);
  if (!bus) {
    std::fprintf(stderr, "%s\n", bus.error().message.c_str());
    return 1;
  }
  using Units = std::vector<std::string>;
  auto names = await<idlepool::Result<Units>>(
      event, [&](auto done) { (*bus)->list_units({vm["pattern"].as<std::string>()}, done); });
  if (!names || names->empty()) {
    std::fprintf(stderr, "no units match %s\n", vm["pattern"].as<std::string>().c_str());
    return 1;
  }
  std::vector<std::string> services, sockets;
  for (const auto& n : *names)
    if (n.size() > 8 && n.ends_with(".service")) services.push_back(n);
  using Services = std::vector<idlepool::Result<idlepool::ServiceUnit>>;
  using Sockets = std::vector<idlepool::Result<idlepool::SocketUnit>>;
  for (const auto& unit : await<Services>(event, [&](auto done) { (*bus)->read_services(services, done); }))
    if (unit)
      for (const auto& t : unit->triggered_by) sockets.push_back(t);
  std::printf("%zu services, %zu sockets\n", services.size(), sockets.size());

  std::vector<Call> getall, get;
  static const char* kUnitProps[] = {"LoadState",
                                     "ActiveState",
                                     "SubState",
                                     "TriggeredBy",
                                     "ActiveEnterTimestampMonotonic",
                                     "InactiveExitTimestampMonotonic",
                                     "Job",
                                     "StartLimitBurst",
                                     "StartLimitIntervalUSec"};
  static const char* kServiceProps[] = {"ControlGroup", "MainPID", "KillSignal", "ExecStart"};
  static const char* kSocketUnitProps[] = {"LoadState", "ActiveState", "SubState", "Triggers"};
  for (const auto& s : services) {
    auto path = unit_path(s);
    getall.push_back({path, "org.freedesktop.systemd1.Unit", nullptr});
    getall.push_back({path, "org.freedesktop.systemd1.Service", nullptr});
    for (const char* p : kUnitProps) get.push_back({path, "org.freedesktop.systemd1.Unit", p});
    for (const char* p : kServiceProps) get.push_back({path, "org.freedesktop.systemd1.Service", p});
  }
  for (const auto& s : sockets) {
    auto path = unit_path(s);
    getall.push_back({path, "org.freedesktop.systemd1.Unit", nullptr});
    getall.push_back({path, "org.freedesktop.systemd1.Socket", nullptr});
    for (const char* p : kSocketUnitProps) get.push_back({path, "org.freedesktop.systemd1.Unit", p});
    get.push_back({path, "org.freedesktop.systemd1.Socket", "Listen"});
  }

  // A second connection for the raw calls (SdBus keeps its own).
  sd_bus* raw = nullptr;
  if (sd_bus_open_system(&raw) < 0) return 1;
  size_t window = vm["window"].as<size_t>();
  struct Way {
    const char* name;
    std::function<size_t()> run;
    size_t calls;
  };
  std::vector<Way> ways = {
      {"idlepool",
       [&] {
         size_t failed = 0;
         for (const auto& r : await<Services>(event, [&](auto done) { (*bus)->read_services(services, done); }))
           failed += r ? 0 : 1;
         for (const auto& r : await<Sockets>(event, [&](auto done) { (*bus)->read_sockets(sockets, done); }))
           failed += r ? 0 : 1;
         return failed;
       },
       get.size()},
      {"pipelined-get", [&] { return run(raw, get, window); }, get.size()},
      {"serial-get", [&] { return run(raw, get, 1); }, get.size()},
      {"serial-getall", [&] { return run(raw, getall, 1); }, getall.size()},
      {"pipelined-getall", [&] { return run(raw, getall, window); }, getall.size()},
  };
  int rounds = vm["rounds"].as<int>();
  double first = 0;
  for (const auto& way : ways) {
    std::vector<double> t;
    size_t failed = 0;
    std::string each;
    for (int i = 0; i < rounds; ++i) {
      auto a = std::chrono::steady_clock::now();
      failed += way.run();
      t.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - a).count());
      each += (each.empty() ? "" : " ") + std::to_string(t.back()).substr(0, 6);
    }
    std::vector<double> sorted = t;
    std::sort(sorted.begin(), sorted.end());
    double median = sorted[sorted.size() / 2];
    if (first == 0) first = median;
    std::printf("%-17s %6zu calls  rounds %s s  median %.3f s (%.2f ms a unit)  ratio %.3f  failed %zu\n", way.name,
                way.calls, each.c_str(), median, median * 1000 / static_cast<double>(services.size()), median / first,
                failed);
  }
  sd_bus_unref(raw);
  return 0;
}
