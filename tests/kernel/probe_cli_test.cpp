// idlepool-probe as operators run it: a black box, on the real kernel.
#include <gtest/gtest.h>

#include <cstdlib>
#include <nlohmann/json.hpp>

#include "subprocess.h"
#include "test_server.h"

namespace idlepool::testing {
namespace {

std::string probe_bin() { return project_binary("idlepool-probe"); }

TEST(ProbeCli, PrintsOneJsonObjectPerListenerAndCountsWhatHappened) {
  TestServer tcp(Family::kTcp4), unix_server(Family::kUnix);
  tcp.start_workers(1);
  unix_server.start_workers(1);
  auto result = run_program({probe_bin(), "--json", "--interval", "0.3", "--duration", "3", tcp.address().to_string(),
                             unix_server.address().to_string()},
                            [&](const std::string& line) {
                              if (line != R"({"type":"ready"})") return;
                              // Registered: now the traffic it must count.
                              for (int i = 0; i < 3; ++i) Client(tcp.address()).request();
                              Client keep(unix_server.address());
                              for (int i = 0; i < 2; ++i) keep.request();
                            });
  ASSERT_EQ(result.exit_code, 0) << result.stderr_text;
  ASSERT_GE(result.stdout_lines.size(), 4u);
  auto hello = nlohmann::json::parse(result.stdout_lines[0]);
  EXPECT_EQ(hello["type"], "probe");
  const char* expected_tier = std::getenv("IDLEPOOL_EXPECT_AUTO_TIER");
  ASSERT_NE(expected_tier, nullptr);
  EXPECT_EQ(hello["tiers"]["loaded"], expected_tier);
  // The final report: the last line per address.
  nlohmann::json last_tcp, last_unix;
  for (const auto& line : result.stdout_lines) {
    auto j = nlohmann::json::parse(line);  // every line must be JSON
    if (j["type"] != "listener") continue;
    (j["address"] == tcp.address().to_string() ? last_tcp : last_unix) = j;
  }
  ASSERT_FALSE(last_tcp.is_null());
  ASSERT_FALSE(last_unix.is_null());
  EXPECT_EQ(last_tcp["accepts"], 3);
  EXPECT_EQ(last_tcp["requests"], 3);
  EXPECT_EQ(last_tcp["listening"], true);
  EXPECT_EQ(last_tcp["active"], 0);
  EXPECT_EQ(last_unix["accepts"], 1);
  EXPECT_EQ(last_unix["requests"], 2);
  EXPECT_EQ(last_unix["bound"], unix_server.address().to_string());
  EXPECT_TRUE(last_tcp["idle_seconds"].is_number());
  EXPECT_GT(last_tcp["last_activity_ns"].get<uint64_t>(), 0u);
}

TEST(ProbeCli, SyscallTierReportsRequestsAsUnavailableNotZero) {
  TestServer tcp(Family::kTcp4);
  tcp.start_workers(1);
  auto result = run_program({probe_bin(), "--json", "--tier=syscall", "--duration", "0.5", tcp.address().to_string()});
  ASSERT_EQ(result.exit_code, 0) << result.stderr_text;
  auto last = nlohmann::json::parse(result.stdout_lines.back());
  EXPECT_TRUE(last["requests"].is_null()) << last.dump();
  EXPECT_EQ(last["tiers"]["requests"], "unavailable");
}

TEST(ProbeCli, TextOutputHasATableAndTheTiers) {
  TestServer tcp(Family::kTcp6);
  auto result = run_program({probe_bin(), "--duration", "0.2", tcp.address().to_string()});
  ASSERT_EQ(result.exit_code, 0) << result.stderr_text;
  ASSERT_GE(result.stdout_lines.size(), 3u);
  EXPECT_EQ(result.stdout_lines[0].rfind("ADDRESS", 0), 0u);
  EXPECT_NE(result.stdout_lines[1].find(tcp.address().to_string()), std::string::npos);
  EXPECT_NE(result.stdout_lines[2].find("tiers: accepts="), std::string::npos);
  EXPECT_NE(result.stderr_text.find("loaded at tier"), std::string::npos);
}

struct BadRun {
  std::vector<std::string> args;
  int exit_code;
  const char* says;
};

TEST(ProbeCli, BadInputGetsAClearErrorAndExitCode) {
  TestServer tcp(Family::kTcp4);
  uint16_t closed_port = tcp.address().port;
  tcp.close_listener();
  std::vector<BadRun> runs = {
      {{"127.0.0.1:"}, 2, "invalid socket address '127.0.0.1:': missing port"},
      {{"localhost:80"}, 2, "'localhost' is not an IPv4 address"},
      {{"--tier=bogus", "127.0.0.1:80"}, 2, "unknown tier 'bogus'"},
      {{"--interval=0", "127.0.0.1:80"}, 2, "--interval must be > 0"},
      {{"--frobnicate", "127.0.0.1:80"}, 2, "unrecognised option '--frobnicate'"},
      {{}, 2, "no ADDRESS given"},
      {{"127.0.0.1:" + std::to_string(closed_port)}, 1, "no listening socket at 127.0.0.1:"},
      {{"--btf=/nonexistent", "127.0.0.1:80"}, 1, "kernel BTF not found at /nonexistent"},
  };
  for (const auto& r : runs) {
    std::vector<std::string> argv{probe_bin()};
    argv.insert(argv.end(), r.args.begin(), r.args.end());
    auto result = run_program(argv);
    std::string shown = r.args.empty() ? "(no arguments)" : r.args[0];
    EXPECT_EQ(result.exit_code, r.exit_code) << shown << ": " << result.stderr_text;
    EXPECT_NE(result.stderr_text.find(r.says), std::string::npos) << shown << ": " << result.stderr_text;
  }
}

TEST(ProbeCli, VersionAndHelp) {
  auto v = run_program({probe_bin(), "--version"});
  EXPECT_EQ(v.exit_code, 0);
  ASSERT_FALSE(v.stdout_lines.empty());
  EXPECT_EQ(v.stdout_lines[0].rfind("idlepool-probe ", 0), 0u);
  auto h = run_program({probe_bin(), "--help"});
  EXPECT_EQ(h.exit_code, 0);
  ASSERT_FALSE(h.stdout_lines.empty());
  EXPECT_EQ(h.stdout_lines[0].rfind("Usage: idlepool-probe", 0), 0u);
}

}  // namespace
}  // namespace idlepool::testing
