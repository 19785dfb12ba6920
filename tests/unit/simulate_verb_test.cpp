// idlepoolctl simulate on files small enough to count by hand, and on files that are not logs.
#include <gtest/gtest.h>
#include <unistd.h>

#include <sstream>

#include "simulate.h"

namespace idlepool::ctl {
namespace {

std::string write_temp(const std::string& text) {
  char path[] = "/tmp/idlepool-sim-XXXXXX";
  int fd = mkstemp(path);
  EXPECT_GE(fd, 0);
  EXPECT_EQ(write(fd, text.data(), text.size()), static_cast<ssize_t>(text.size()));
  close(fd);
  return path;
}

struct Outcome {
  int code;
  std::string out, err;
};

Outcome simulate(SimulateRequest r) {
  std::ostringstream out, err;
  int code = run_simulate(r, out, err);
  return {code, out.str(), err.str()};
}

// The row of one policy, as printed.
std::string row(const std::string& out, const std::string& policy) {
  std::istringstream in(out);
  for (std::string line; std::getline(in, line);)
    if (line.rfind(policy + " ", 0) == 0) return line;
  return "";
}

TEST(SimulateVerb, TimestampsCountedByHand) {
  // Pool a: requests at 0, 100 and 1000 s: under a fixed minute (60 s idle, min-uptime 30 s) it runs 0..60,
  // 100..160, 1000..1060 (180 s, 3 cold starts); under 5 minutes 0..400, 1000..1300 (700 s, 2 cold starts).
  // Pool b: one request (0.5 s after the first of a): 60 s, 300 s. So 240 s (0.07 h, 7 MiB-hours at 100 MiB) and
  // 1000 s (0.28 h); always running, two pools over the 1000 s the trace spans: 0.56 h.
  std::string path = write_temp("# seconds pool\n1000 a\n1000.5 b\n1100 a\n\n2000 a\n");
  SimulateRequest r;
  r.files = {path};
  r.memory_mib = 100;
  Outcome run = simulate(r);
  unlink(path.c_str());
  ASSERT_EQ(run.code, 0) << run.err;
  EXPECT_NE(run.out.find("2 pools, 4 requests over 0.0 days"), std::string::npos) << run.out;
  EXPECT_EQ(row(run.out, "fixed 1min"), "fixed 1min                0.07           7            4    100.00%")
      << run.out;
  EXPECT_EQ(row(run.out, "fixed 5min"), "fixed 5min                0.28          28            3     75.00%")
      << run.out;
  EXPECT_EQ(row(run.out, "always running"), "always running            0.56          56            0      0.00%")
      << run.out;
}

TEST(SimulateVerb, AccessLogsByFileVhostAndPrefix) {
  std::string shop = write_temp(
      "1.2.3.4 - - [01/Dec/2026:10:00:00 +0000] \"GET /shop/a HTTP/1.1\" 200 1 \"-\" \"-\"\n"
      "1.2.3.4 - - [01/Dec/2026:10:00:30 +0000] \"GET /blog/b HTTP/1.1\" 200 1 \"-\" \"-\"\n"
      "1.2.3.4 - - [01/Dec/2026:10:10:00 +0000] \"GET /other HTTP/1.1\" 200 1 \"-\" \"-\"\n");
  SimulateRequest r;
  r.files = {shop};
  Outcome by_file = simulate(r);
  EXPECT_NE(by_file.out.find("1 pool, 3 requests"), std::string::npos) << by_file.out << by_file.err;
  r.prefixes = {{"/shop", "shop"}, {"/blog", "blog"}};
  Outcome by_prefix = simulate(r);
  EXPECT_NE(by_prefix.out.find("2 pools, 2 requests"), std::string::npos) << by_prefix.out << by_prefix.err;
  EXPECT_NE(by_prefix.out.find("1 requests matched no pool"), std::string::npos) << by_prefix.out;
  unlink(shop.c_str());
  std::string vhosts = write_temp(
      "a.example:80 1.2.3.4 - - [01/Dec/2026:10:00:00 +0000] \"GET / HTTP/1.1\" 200 1\n"
      "b.example:443 1.2.3.4 - - [01/Dec/2026:10:00:00 +0000] \"GET / HTTP/1.1\" 200 1\n");
  r = SimulateRequest{};
  r.files = {vhosts};
  Outcome by_vhost = simulate(r);
  unlink(vhosts.c_str());
  EXPECT_NE(by_vhost.out.find("2 pools, 2 requests"), std::string::npos) << by_vhost.out << by_vhost.err;
}

TEST(SimulateVerb, WhatIsNotALogIsNamedWithItsLine) {
  std::string path = write_temp("this is\nnot a log\n");
  SimulateRequest r;
  r.files = {path};
  Outcome run = simulate(r);
  EXPECT_EQ(run.code, 1);
  EXPECT_NE(run.err.find(path + ":1: skipped: no [time] field"), std::string::npos) << run.err;
  EXPECT_NE(run.err.find("no request read"), std::string::npos) << run.err;
  r.format = "timestamps";
  run = simulate(r);
  EXPECT_NE(run.err.find(path + ":1: skipped: bad time 'this'"), std::string::npos) << run.err;
  unlink(path.c_str());
  r.files = {"/nonexistent/access.log"};
  EXPECT_EQ(simulate(r).code, 1);
  r.files = {};
  EXPECT_EQ(simulate(r).code, 2);
  r.files = {"/dev/null"};
  r.adaptive_min = "1h";
  r.adaptive_max = "1m";
  EXPECT_NE(simulate(r).err.find("--adaptive-max must be at least --adaptive-min"), std::string::npos);
}

}  // namespace
}  // namespace idlepool::ctl
