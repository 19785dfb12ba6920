// Command-line parsing shared by the benchmarks: options, --help, errors on stderr with exit code 2.
#pragma once

#include <boost/program_options.hpp>
#include <cstdio>
#include <optional>
#include <sstream>

namespace idlepool::bench {

// Parses argv into `vm`. Returns an exit code when the program should stop here (help shown: 0; bad option: 2).
inline std::optional<int> parse_options(int argc, char** argv, boost::program_options::options_description& options,
                                        boost::program_options::variables_map& vm) {
  namespace po = boost::program_options;
  options.add_options()("help,h", "show this help");
  try {
    po::store(po::parse_command_line(argc, argv, options), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 2;
  }
  if (vm.count("help")) {
    std::printf("%s", (std::ostringstream() << options).str().c_str());
    return 0;
  }
  return std::nullopt;
}

}  // namespace idlepool::bench
