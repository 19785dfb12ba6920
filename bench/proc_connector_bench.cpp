// How many process events the listener and tracker sustain: a fork storm (processes that fork and exit at once,
// from several forkers in parallel) while a ProcessWatcher, on its own thread, follows one pool. Prints events
// generated and read, events lost, the rate and the CPU the watcher used.
//
// Usage: idlepool_bench_proc_connector [--forks N] [--forkers K] [--buffer BYTES]...
//   every --buffer value is a run of its own (default: the daemon's 16 MiB, and 256 KiB)
#include <poll.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <boost/program_options.hpp>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "bench_options.h"
#include "idlepool/sys/cgroup.h"
#include "idlepool/sys/process_watcher.h"

namespace po = boost::program_options;
using namespace idlepool;

namespace {

double thread_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

struct RunResult {
  double seconds = 0;
  uint64_t read = 0, lost = 0, overruns = 0, resyncs = 0;
  double watcher_cpu = 0;
  uint32_t final_processes = 0;
};

RunResult run(sys::CgroupFs& fs, const std::string& cgroup, int forks, int forkers, int buffer) {
  sys::ProcConnectorOptions options;
  options.receive_buffer_bytes = buffer;
  auto pc = sys::ProcConnector::open(options);
  if (!pc) {
    std::fprintf(stderr, "%s\n", pc.error().message.c_str());
    std::exit(1);
  }
  sys::ProcessWatcher watcher(std::move(*pc), fs);
  if (auto r = watcher.add_pool("bench.service", cgroup); !r) {
    std::fprintf(stderr, "%s\n", r.error().message.c_str());
    std::exit(1);
  }
  std::atomic<bool> stop{false};
  RunResult result;
  std::thread reader([&] {
    double cpu0 = thread_cpu_seconds();
    while (!stop.load()) {
      pollfd p{watcher.fd(), POLLIN, 0};
      if (poll(&p, 1, 20) > 0) (void)watcher.on_readable();
    }
    (void)watcher.on_readable();
    result.watcher_cpu = thread_cpu_seconds() - cpu0;
  });
  auto t0 = std::chrono::steady_clock::now();
  std::vector<pid_t> parents;
  for (int k = 0; k < forkers; ++k) {
    pid_t p = fork();
    if (p == 0) {
      for (int i = 0; i < forks / forkers; ++i) {
        pid_t c = fork();
        if (c == 0) _exit(0);
        if (c > 0) waitpid(c, nullptr, 0);
      }
      _exit(0);
    }
    parents.push_back(p);
  }
  for (pid_t p : parents) waitpid(p, nullptr, 0);
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::this_thread::sleep_for(std::chrono::milliseconds(200));  // let the reader drain
  stop = true;
  reader.join();
  auto stats = watcher.stats();
  result.read = stats.connector.events;
  result.lost = stats.connector.lost;
  result.overruns = stats.connector.overruns;
  result.resyncs = stats.resyncs;
  result.final_processes = watcher.processes("bench.service")->processes;
  return result;
}

}  // namespace

int main(int argc, char** argv) {
  int forks = 20000, forkers = 2;
  std::vector<int> buffers;
  po::options_description opts("idlepool_bench_proc_connector");
  opts.add_options()("forks", po::value(&forks)->default_value(20000), "processes forked in all")(
      "forkers", po::value(&forkers)->default_value(2), "processes forking in parallel")(
      "buffer", po::value(&buffers)->multitoken(), "receive buffer bytes (repeatable)");
  po::variables_map vm;
  if (auto done = idlepool::bench::parse_options(argc, argv, opts, vm)) return *done;
  if (buffers.empty()) buffers = {16 << 20, 256 << 10};
  auto fs = sys::CgroupFs::open();
  if (!fs) {
    std::fprintf(stderr, "%s\n", fs.error().message.c_str());
    return 1;
  }
  // A pool to follow: one sleeping process in a cgroup of its own.
  std::string cgroup = "/idlepool-bench-" + std::to_string(getpid());
  std::filesystem::create_directory(fs->root() + cgroup);
  pid_t member = fork();
  if (member == 0) {
    pause();
    _exit(0);
  }
  std::ofstream(fs->root() + cgroup + "/cgroup.procs") << member << "\n";

  std::printf("fork storm: %d processes from %d forkers (each fork and exit is an event; exec none)\n", forks, forkers);
  std::printf("%12s %9s %12s %12s %10s %9s %8s %12s %9s\n", "buffer", "seconds", "forks/s", "events read", "events/s",
              "lost", "overruns", "watcher CPU", "pool ok");
  for (int buffer : buffers) {
    auto r = run(*fs, cgroup, forks, forkers, buffer);
    std::printf("%12d %9.2f %12.0f %12llu %10.0f %9llu %8llu %11.1f%% %9s\n", buffer, r.seconds, forks / r.seconds,
                static_cast<unsigned long long>(r.read), static_cast<double>(r.read) / r.seconds,
                static_cast<unsigned long long>(r.lost), static_cast<unsigned long long>(r.overruns),
                100.0 * r.watcher_cpu / r.seconds, r.final_processes == 1 ? "yes" : "NO");
  }
  kill(member, SIGKILL);
  waitpid(member, nullptr, 0);
  rmdir((fs->root() + cgroup).c_str());
  return 0;
}
