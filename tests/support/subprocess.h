// Runs a program for black-box tests of the project's binaries: stdout is handed over line by line while it runs
// (so a test can act on what the program printed), stderr is collected.
#pragma once

#include <functional>
#include <string>
#include <vector>

namespace idlepool::testing {

struct Finished {
  int exit_code = -1;  // -1 if killed by a signal
  std::vector<std::string> stdout_lines;
  std::string stderr_text;
};

// `on_line` sees each stdout line as it arrives.
Finished run_program(const std::vector<std::string>& argv,
                     const std::function<void(const std::string&)>& on_line = nullptr);

// Path of one of the project's binaries: $IDLEPOOL_BIN_DIR/name if set (QEMU guests), else the build tree's.
std::string project_binary(const std::string& name);
// The same for the tests' own helper programs (build/tests).
std::string test_binary(const std::string& name);

}  // namespace idlepool::testing
