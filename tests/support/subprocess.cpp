#include "subprocess.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>

namespace idlepool::testing {

Finished run_program(const std::vector<std::string>& argv, const std::function<void(const std::string&)>& on_line) {
  Finished out;
  int out_pipe[2], err_pipe[2];
  if (pipe2(out_pipe, O_CLOEXEC) != 0 || pipe2(err_pipe, O_CLOEXEC) != 0) return out;
  pid_t pid = fork();
  if (pid == 0) {
    dup2(out_pipe[1], 1);
    dup2(err_pipe[1], 2);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execv(args[0], args.data());
    _exit(127);
  }
  close(out_pipe[1]);
  close(err_pipe[1]);
  std::string partial;
  pollfd fds[2] = {{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}};
  int open_fds = 2;
  char buf[4096];
  while (open_fds > 0) {
    if (poll(fds, 2, -1) < 0) continue;
    for (auto& p : fds) {
      if (p.fd < 0 || !(p.revents & (POLLIN | POLLHUP))) continue;
      ssize_t n = read(p.fd, buf, sizeof(buf));
      if (n <= 0) {
        close(p.fd);
        p.fd = -1;
        --open_fds;
        continue;
      }
      if (p.fd == err_pipe[0]) {
        out.stderr_text.append(buf, static_cast<size_t>(n));
        continue;
      }
      partial.append(buf, static_cast<size_t>(n));
      for (size_t nl; (nl = partial.find('\n')) != std::string::npos;) {
        std::string line = partial.substr(0, nl);
        partial.erase(0, nl + 1);
        if (on_line) on_line(line);
        out.stdout_lines.push_back(std::move(line));
      }
    }
  }
  int status = 0;
  waitpid(pid, &status, 0);
  out.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return out;
}

std::string project_binary(const std::string& name) {
  if (const char* dir = std::getenv("IDLEPOOL_BIN_DIR")) return std::string(dir) + "/" + name;
  return std::string(IDLEPOOL_BUILD_BIN_DIR) + "/" + name;
}

std::string test_binary(const std::string& name) {
  if (const char* dir = std::getenv("IDLEPOOL_BIN_DIR")) return std::string(dir) + "/" + name;
  return std::string(IDLEPOOL_BUILD_TESTS_DIR) + "/" + name;
}

}  // namespace idlepool::testing
