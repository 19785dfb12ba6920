// idlepoold's command line and configuration file: what this project ships parses, and bad input is named with its
// file and line, never a crash.
#include "options.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <boost/program_options.hpp>
#include <fstream>
#include <sstream>

#include "idlepool/options_error.h"

namespace idlepool::daemon {
namespace {

using namespace std::chrono_literals;

std::string write_temp(const std::string& text) {
  char path[] = "/tmp/idlepool-conf-XXXXXX";
  int fd = mkstemp(path);
  EXPECT_GE(fd, 0);
  EXPECT_EQ(write(fd, text.data(), text.size()), static_cast<ssize_t>(text.size()));
  close(fd);
  return path;
}

Result<Invocation> parse(std::vector<std::string> args) {
  args.insert(args.begin(), "idlepoold");
  return parse_invocation(args);
}

TEST(Options, TheShippedExampleIsValid) {
  auto inv = parse({"--config", std::string(IDLEPOOL_SOURCE_DIR) + "/dist/idlepool/idlepool.conf.example"});
  ASSERT_TRUE(inv.ok()) << inv.error().message;
  const auto& c = inv->config;
  EXPECT_EQ(c.defaults.idle_timeout, 300s);
  EXPECT_EQ(c.unit_patterns, (std::vector<std::string>{"php*-fpm@*.service", "php*-fpm.service"}));
  EXPECT_EQ(c.policy_for("php-fpm@shop.service").idle_timeout, 1800s);
  EXPECT_TRUE(c.policy_for("php-fpm@admin.service").pinned);
  EXPECT_EQ(c.stop_method, StopMethod::kBus);
}

// The packaged /etc/idlepool/idlepool.conf: every line commented, so it means the defaults, and it shows every
// setting idlepoold has (the same table --help-settings prints and idlepool.conf(5) is made from).
TEST(Options, ThePackagedConfigurationIsTheDefaultsAndShowsEverySetting) {
  std::string path = std::string(IDLEPOOL_SOURCE_DIR) + "/dist/idlepool/idlepool.conf";
  auto inv = parse({"--config", path});
  ASSERT_TRUE(inv.ok()) << inv.error().message;
  auto defaults = parse({});
  ASSERT_TRUE(defaults.ok());
  EXPECT_EQ(inv->config.defaults.idle_timeout, defaults->config.defaults.idle_timeout);
  EXPECT_EQ(inv->config.unit_patterns,
            (std::vector<std::string>{"idlepool-php*-fpm@*.service", "php*-fpm@*.service", "php*-fpm.service"}));
  auto table = parse({"--help-settings"});
  ASSERT_TRUE(table.ok());
  ASSERT_FALSE(table->settings_table.empty());
  std::ifstream in(path);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::istringstream rows(table->settings_table);
  std::string row;
  while (std::getline(rows, row)) {
    std::string name = row.substr(0, row.find('\t'));
    if (name == "unit" || name == "pin") continue;  // shown as examples of a per-pool section
    EXPECT_NE(text.find("#" + name + " ="), std::string::npos) << name << " is not shown in " << path;
  }
}

TEST(Options, TheCommandLineWinsOverTheFile) {
  std::string path = write_temp("idle-timeout = 10m\nlog-level = warn\nunit = a.service\n");
  auto inv = parse({"--config", path, "--idle-timeout", "45s", "--pin", "a.service", "--stop-method", "systemctl"});
  unlink(path.c_str());
  ASSERT_TRUE(inv.ok()) << inv.error().message;
  EXPECT_EQ(inv->config.defaults.idle_timeout, 45s);
  EXPECT_EQ(inv->config.log_level, "warn");
  EXPECT_TRUE(inv->config.policy_for("a.service").pinned);
  EXPECT_EQ(inv->config.stop_method, StopMethod::kSystemctl);
}

TEST(Options, NoFileMeansDefaults) {
  auto inv = parse({"--check-config"});  // the default path does not exist on a build machine
  ASSERT_TRUE(inv.ok()) << inv.error().message;
  EXPECT_TRUE(inv->check_config);
  EXPECT_EQ(inv->config.defaults.idle_timeout, 300s);
  EXPECT_EQ(inv->config.defaults.stall_timeout, 5s);
}

TEST(Options, StallTimeoutGlobalAndPerPool) {
  std::string path = write_temp("stall-timeout = 2s\n[pool quiet.service]\nstall-timeout = 0\n");
  auto inv = parse({"--config", path});
  unlink(path.c_str());
  ASSERT_TRUE(inv.ok()) << inv.error().message;
  EXPECT_EQ(inv->config.policy_for("other.service").stall_timeout, 2s);
  EXPECT_EQ(inv->config.policy_for("quiet.service").stall_timeout, 0s) << "0 turns stall checks off";
}

TEST(Options, AdaptiveIdleTimeoutGlobalAndPerPool) {
  std::string path = write_temp(
      "idle-timeout = 10m\nadaptive-min = 2m\nadaptive-cold-start-cost = 1h\nmax-prewarming = 2\n"
      "[pool shop.service]\nidle-timeout = adaptive\nadaptive-max = 30m\nprewarm = yes\n"
      "[pool blog.service]\nidle-timeout = 3m\n");
  auto inv = parse({"--config", path});
  unlink(path.c_str());
  ASSERT_TRUE(inv.ok()) << inv.error().message;
  const auto& c = inv->config;
  EXPECT_FALSE(c.policy_for("other.service").adaptive.on);
  EXPECT_EQ(c.policy_for("other.service").idle_timeout, 10min);
  auto shop = c.policy_for("shop.service").adaptive;
  EXPECT_TRUE(shop.on);
  EXPECT_TRUE(shop.prewarm);
  EXPECT_EQ(shop.min, 2min);
  EXPECT_EQ(shop.max, 30min);
  EXPECT_EQ(shop.cold_start_cost, 1h);
  EXPECT_EQ(c.max_prewarming, 2u);
  EXPECT_EQ(c.state_file, "/var/lib/idlepool/rhythm.json");
  auto all = parse({"--idle-timeout", "adaptive", "--state-file", ""});
  ASSERT_TRUE(all.ok()) << all.error().message;
  EXPECT_TRUE(all->config.policy_for("any.service").adaptive.on);
  EXPECT_FALSE(all->config.policy_for("any.service").adaptive.prewarm);
  EXPECT_EQ(all->config.state_file, "");
}

struct Bad {
  std::string file;
  std::vector<std::string> args;
  std::string says;  // with ":LINE: " where a file line is meant
};

TEST(Options, BadInputIsNamedWithItsLine) {
  std::vector<Bad> cases = {
      {"idle-timeout = 5m\nbogus = 1\n", {}, ":2: unknown setting 'bogus'"},
      {"\n\nidle-timeout = soon\n", {}, ":3: idle-timeout: 'soon' is not a duration"},
      {"[pool x.service]\nidle-timeout = 1\nfrobs = 2\n", {}, ":3: [pool x.service]: unknown setting 'frobs'"},
      {"[pool x.service]\npin = maybe\n", {}, ":2: [pool x.service] pin: 'maybe' is not true or false"},
      {"stall-timeout = often\n", {}, ":1: stall-timeout: 'often' is not a duration"},
      {"[pool x.service]\nstall-timeout = -3\n", {}, ":2: [pool x.service] stall-timeout: '-3' is not a duration"},
      {"dry-run = perhaps\n", {}, ":1: the argument ('perhaps') for option 'dry-run' is invalid"},
      {"max-stops-per-second = 0\n", {}, ":1: max-stops-per-second must be greater than 0"},
      {"log-level = loud\n", {}, ":1: log-level 'loud'"},
      {"stop-method = carrier-pigeon\n", {}, ":1: 'carrier-pigeon' is not bus or systemctl"},
      {"this is not ini\n", {}, "invalid line 'this is not ini'"},
      {"\nmetrics-listen = localhost:10071\n", {}, ":2: metrics-listen 'localhost:10071' is not IP:PORT"},
      {"metrics-listen = /run/metrics.sock\n", {}, ":1: metrics-listen '/run/metrics.sock' is not IP:PORT"},
      {"", {"--metrics-listen", "10071"}, "--metrics-listen: metrics-listen '10071' is not IP:PORT"},
      {"metrics-token-file = token\n", {}, ":1: metrics-token-file 'token' is not an absolute path"},
      {"[pool site]\npin = true\n", {}, "[pool site] is not a unit name"},
      {"", {"--idle-timeout", "0"}, "--idle-timeout: idle-timeout must be at least 1s"},
      {"", {"--max-stops-per-second", "x"}, "the argument ('x') for option '--max-stops-per-second' is invalid"},
      {"", {"--frobnicate"}, "unrecognised option '--frobnicate'"},
      {"dry-run = true\ndry-run = false\n", {}, ":1: option 'dry-run' cannot be specified more than once"},
      // Text that looks like Boost's own placeholders is shown as written (Boost's what() replaced it forever).
      {"%invalid_line%\n", {}, "invalid line '%invalid_line%'"},
      {"dry-run = %value%\n", {}, ":1: the argument ('%value%') for option 'dry-run' is invalid"},
      {"", {"--max-stops-per-second", "%value%%prefix%"}, "the argument ('%value%%prefix%') for option '--max-stops"},
      {"", {"--%option%"}, "unrecognised option '--%option%'"},
      {"idle-timeout = sometimes\n",
       {},
       ":1: idle-timeout: 'sometimes' is not a duration (N, Ns, Nm, Nh or Nd) (or adaptive)"},
      {"adaptive-min = 10m\nadaptive-max = 5m\n", {}, ":2: adaptive-max (300s) is shorter than adaptive-min (600s)"},
      {"adaptive-min = 0\n", {}, ":1: adaptive-min must be at least 1s"},
      {"[pool x.service]\nadaptive-max = 10s\n",
       {},
       "[pool x.service] adaptive-max (10s) is shorter than adaptive-min"},
      {"[pool x.service]\nadaptive-min = soon\n", {}, ":2: [pool x.service] adaptive-min: 'soon' is not a duration"},
      {"[pool x.service]\nprewarm = often\n", {}, ":2: [pool x.service] prewarm: 'often' is not true or false"},
      {"state-file = rhythm.json\n", {}, ":1: state-file 'rhythm.json' is not an absolute path"},
  };
  for (const auto& c : cases) {
    std::string path = write_temp(c.file);
    std::vector<std::string> args{"--config", path};
    args.insert(args.end(), c.args.begin(), c.args.end());
    auto inv = parse(args);
    unlink(path.c_str());
    ASSERT_FALSE(inv.ok()) << c.says;
    std::string expected = c.says.rfind(":", 0) == 0 ? path + c.says : c.says;
    EXPECT_NE(inv.error().message.find(expected), std::string::npos)
        << "expected '" << expected << "' in '" << inv.error().message << "'";
  }
  auto missing = parse({"--config", "/nonexistent/idlepool.conf"});
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.error().message.find("/nonexistent/idlepool.conf does not exist"), std::string::npos);
}

// describe() says what Boost's what() says wherever what() terminates.
TEST(Options, ErrorsReadAsBoostWritesThem) {
  namespace po = boost::program_options;
  po::invalid_option_value value("soon");
  value.set_option_name("idle-timeout");
  po::ambiguous_option ambiguous({"socket", "sync"});
  ambiguous.add_context("s", "--s", po::command_line_style::allow_long);
  po::unknown_option unknown("--frobs");
  po::invalid_config_file_syntax syntax("not ini", po::invalid_syntax::unrecognized_line);
  po::validation_error nameless(po::validation_error::invalid_option_value);
  po::error plain("plain text");
  for (const po::error* e :
       std::initializer_list<const po::error*>{&value, &ambiguous, &unknown, &syntax, &nameless, &plain})
    EXPECT_EQ(describe(*e), std::string(e->what()));
}

}  // namespace
}  // namespace idlepool::daemon
