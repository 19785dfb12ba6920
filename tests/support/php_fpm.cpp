#include "php_fpm.h"

#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <thread>

#include "fastcgi_client.h"
#include "test_server.h"

namespace idlepool::testing {

std::string php_fpm_binary() {
  for (const char* p : {"/usr/sbin/php-fpm8.2", "/usr/sbin/php-fpm"})
    if (::access(p, X_OK) == 0) return p;
  return {};
}

PhpFpmPool::PhpFpmPool(const PhpFpmOptions& options) {
  std::string bin = php_fpm_binary();
  if (bin.empty()) throw std::runtime_error("php-fpm8.2 is not installed (scripts/install-deps.sh installs it)");
  char tmpl[] = "/tmp/idlepool-fpm-XXXXXX";
  if (!mkdtemp(tmpl)) throw std::runtime_error("mkdtemp failed");
  dir_ = tmpl;
  std::string listen;
  if (options.tcp) {
    TestServer probe_port(Family::kTcp4);  // borrow a free port
    listen = "127.0.0.1:" + std::to_string(probe_port.address().port);
  } else {
    listen = dir_ + "/pool.sock";
  }
  address_ = *parse_socket_address(listen);
  std::ofstream conf(dir_ + "/php-fpm.conf");
  conf << "[global]\n"
       << "pid = " << dir_ << "/php-fpm.pid\n"
       << "error_log = " << dir_ << "/error.log\n"
       << "daemonize = no\n"
       << "process_control_timeout = 10s\n"
       << "[pool]\n"
       << "listen = " << listen << "\n"
       << "pm = " << options.pm << "\n"
       << "pm.max_children = " << options.max_children << "\n"
       << "pm.start_servers = 1\npm.min_spare_servers = 1\npm.max_spare_servers = " << options.max_children << "\n"
       << "pm.process_idle_timeout = " << options.process_idle_timeout_s << "s\n"
       << "catch_workers_output = yes\n";
  conf.close();
  master_ = fork();
  if (master_ == 0) {
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    for (const auto& [name, value] : options.env) ::setenv(name.c_str(), value.c_str(), 1);
    execl(bin.c_str(), bin.c_str(), "--nodaemonize", "--allow-to-run-as-root", "--fpm-config",
          (dir_ + "/php-fpm.conf").c_str(), "-n", static_cast<char*>(nullptr));
    _exit(127);
  }
  // Ready when a request gets an answer.
  std::string probe = script("ready.php", "<?php echo 'ready';");
  bool ready = eventually(
      [&] {
        auto c = FastCgiClient::connect(address_, false);
        if (!c) return false;
        auto r = c->request(probe);
        return r.ok() && r->body() == "ready";
      },
      std::chrono::seconds(10));
  if (!ready) throw std::runtime_error("php-fpm did not answer on " + listen + "; see " + dir_ + "/error.log");
}

std::string PhpFpmPool::script(const std::string& name, const std::string& php_source) const {
  std::string path = dir_ + "/" + name;
  std::ofstream(path) << php_source;
  return path;
}

PhpFpmPool::~PhpFpmPool() {
  if (master_ > 0) {
    ::kill(master_, SIGTERM);
    ::waitpid(master_, nullptr, 0);
  }
  std::error_code ec;
  std::filesystem::remove_all(dir_, ec);
}

}  // namespace idlepool::testing
