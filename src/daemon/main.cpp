// idlepoold: parse options, set up logging, build the daemon, run its loop. Exit codes: 0 stopped by a signal or
// --check-config found the configuration valid, 1 cannot start (the reason is logged), 2 bad command line or
// configuration.
#include <spdlog/spdlog.h>

#include <iostream>

#include "daemon.h"
#include "idlepool/version.h"
#include "options.h"

namespace {

int run(int argc, char** argv) {
  std::vector<std::string> args(argv, argv + argc);
  auto inv = idlepool::daemon::parse_invocation(args);
  if (!inv) {
    std::cerr << "idlepoold: " << inv.error().message << "\n";
    return 2;
  }
  if (inv->help) {
    std::cout << inv->usage;
    return 0;
  }
  if (inv->version) {
    std::cout << "idlepoold " << IDLEPOOL_VERSION << "\n";
    return 0;
  }
  if (inv->check_config) {
    std::cout << "idlepoold: " << (inv->config_file_found ? inv->config_path : "no configuration file, defaults")
              << ": valid\n";
    return 0;
  }
  idlepool::daemon::setup_logging(inv->config.log_level);
  auto daemon = idlepool::daemon::Daemon::create(*inv, args);
  if (!daemon) {
    spdlog::critical("{}", daemon.error().message);
    return 1;
  }
  return (*daemon)->run();
}

}  // namespace

// Recoverable errors travel as values; an exception reaching here is a bug or an exhausted machine: said, and the
// daemon exits non-zero so that systemd restarts it.
int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    spdlog::critical("unexpected error: {}", e.what());
  } catch (...) {
    spdlog::critical("unexpected error");
  }
  return 1;
}
