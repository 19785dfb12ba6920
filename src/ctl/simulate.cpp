#include "simulate.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <optional>
#include <ostream>
#include <tuple>

#include "idlepool/core/config.h"
#include "idlepool/core/simulate.h"
#include "idlepool/wire/access_log.h"

namespace idlepool::ctl {
namespace {

constexpr int kOk = 0, kFailure = 1, kUsage = 2;
constexpr size_t kMaxLine = 64 * 1024;
constexpr size_t kShownErrors = 5;

std::string base_name(const std::string& path) {
  auto slash = path.rfind('/');
  std::string name = slash == std::string::npos ? path : path.substr(slash + 1);
  for (const char* suffix : {".log", "-access", "_access", ".access"})
    if (name.size() > std::strlen(suffix) &&
        name.compare(name.size() - std::strlen(suffix), std::string::npos, suffix) == 0)
      name.erase(name.size() - std::strlen(suffix));
  return name;
}

struct Trace {
  std::map<std::string, std::vector<double>> pools;  // pool -> request times, unix seconds
  size_t lines = 0, skipped = 0, unmatched = 0;
};

class Reader {
 public:
  Reader(const SimulateRequest& r, std::ostream& err) : request_(r), err_(err) {}

  bool read(const std::string& path, Trace& trace) {
    std::ifstream in(path);
    if (!in) {
      err_ << "idlepoolctl simulate: cannot read " << path << ": " << std::strerror(errno) << "\n";
      return false;
    }
    std::string line;
    size_t n = 0;
    std::optional<bool> timestamps;
    if (request_.format != "auto") timestamps = request_.format == "timestamps";
    while (std::getline(in, line)) {
      ++n;
      if (line.size() > kMaxLine) {
        problem(path, n, "a line of " + std::to_string(line.size()) + " bytes", trace);
        continue;
      }
      if (!timestamps) {
        auto probe = wire::parse_timestamp_line(line);
        if (probe && !*probe) continue;  // blank or comment: decides nothing
        timestamps = probe.ok();
      }
      ++trace.lines;
      if (*timestamps) {
        auto t = wire::parse_timestamp_line(line);
        if (!t) {
          problem(path, n, t.error().message, trace);
          continue;
        }
        if (!*t) {
          --trace.lines;
          continue;
        }
        trace.pools[(*t)->pool].push_back((*t)->time);
        continue;
      }
      auto e = wire::parse_access_line(line);
      if (!e) {
        problem(path, n, e.error().message, trace);
        continue;
      }
      std::optional<std::string> pool = pool_of(*e, path);
      if (!pool) {
        ++trace.unmatched;
        continue;
      }
      trace.pools[*pool].push_back(e->time);
    }
    return true;
  }

 private:
  std::optional<std::string> pool_of(const wire::AccessLogEntry& e, const std::string& path) const {
    std::string by = request_.pool_by;
    if (by == "auto") by = !request_.prefixes.empty() ? "prefix" : !e.vhost.empty() ? "vhost" : "file";
    if (by == "vhost") return e.vhost.empty() ? std::nullopt : std::optional<std::string>(e.vhost);
    if (by == "prefix") {
      const std::string* best = nullptr;
      size_t best_len = 0;
      for (const auto& [prefix, pool] : request_.prefixes)
        if (e.path.compare(0, prefix.size(), prefix) == 0 && prefix.size() >= best_len) {
          best = &pool;
          best_len = prefix.size();
        }
      return best ? std::optional<std::string>(*best) : std::nullopt;
    }
    return base_name(path);
  }

  void problem(const std::string& path, size_t line, const std::string& what, Trace& trace) {
    ++trace.skipped;
    if (trace.skipped <= kShownErrors) err_ << path << ":" << line << ": skipped: " << what << "\n";
  }

  const SimulateRequest& request_;
  std::ostream& err_;
};

struct Row {
  std::string policy;
  SimResult r;
};

std::string fixed_width(double v, int precision) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", precision, v);
  return buf;
}

}  // namespace

int run_simulate(const SimulateRequest& request, std::ostream& out, std::ostream& err) {
  if (request.files.empty()) {
    err << "idlepoolctl simulate: name the access logs (or timestamp files) to replay\n";
    return kUsage;
  }
  for (const auto& [key, allowed] :
       {std::pair{request.format, "auto combined timestamps"}, std::pair{request.pool_by, "auto file vhost prefix"}})
    if ((" " + std::string(allowed) + " ").find(" " + key + " ") == std::string::npos) {
      err << "idlepoolctl simulate: '" << key << "' is not one of " << allowed << "\n";
      return kUsage;
    }
  if (request.pool_by == "prefix" && request.prefixes.empty()) {
    err << "idlepoolctl simulate: --pool-by prefix needs --prefix PATH=POOL\n";
    return kUsage;
  }
  PoolPolicy adaptive;
  adaptive.adaptive.on = true;
  for (auto [text, field, name] :
       {std::tuple{&request.cold_start_cost, &AdaptiveSettings::cold_start_cost, "--cold-start-cost"},
        std::tuple{&request.adaptive_min, &AdaptiveSettings::min, "--adaptive-min"},
        std::tuple{&request.adaptive_max, &AdaptiveSettings::max, "--adaptive-max"}}) {
    auto d = parse_duration(*text);
    if (!d) {
      err << "idlepoolctl simulate: " << name << ": " << d.error().message << "\n";
      return kUsage;
    }
    adaptive.adaptive.*field = *d;
  }
  if (adaptive.adaptive.max < adaptive.adaptive.min || adaptive.adaptive.min.count() < 1) {
    err << "idlepoolctl simulate: --adaptive-max must be at least --adaptive-min, which must be at least 1s\n";
    return kUsage;
  }
  if (!(request.memory_mib >= 0) || !std::isfinite(request.memory_mib)) {
    err << "idlepoolctl simulate: --memory takes MiB, not " << request.memory_mib << "\n";
    return kUsage;
  }

  Trace trace;
  Reader reader(request, err);
  for (const auto& f : request.files)
    if (!reader.read(f, trace)) return kFailure;
  if (trace.skipped > kShownErrors) err << "... " << trace.skipped - kShownErrors << " more lines skipped\n";
  size_t requests = 0;
  double first = INFINITY, last = -INFINITY;
  for (auto& [pool, times] : trace.pools) {
    std::sort(times.begin(), times.end());
    requests += times.size();
    first = std::min(first, times.front());
    last = std::max(last, times.back());
  }
  if (requests == 0) {
    err << "idlepoolctl simulate: no request read (" << trace.lines << " lines, " << trace.skipped << " skipped, "
        << trace.unmatched << " matched no pool)\n";
    return kFailure;
  }
  if (trace.skipped * 100 > trace.lines) {
    err << "idlepoolctl simulate: " << trace.skipped << " of " << trace.lines
        << " lines could not be read: is --format right?\n";
    return kFailure;
  }
  // Times relative to the first request (monotonic nanoseconds, as the policy counts them).
  std::vector<std::vector<MonoTime>> pools;
  for (const auto& [pool, times] : trace.pools) {
    std::vector<MonoTime> t;
    t.reserve(times.size());
    for (double s : times)
      t.push_back(std::chrono::duration_cast<MonoTime>(std::chrono::duration<double>(s - first + 1)));
    pools.push_back(std::move(t));
  }
  auto replay = [&pools](const PoolPolicy& p) {
    SimResult total;
    for (const auto& t : pools) {
      Rhythm rhythm;
      total += simulate_pool(t, p, rhythm);
    }
    return total;
  };
  std::vector<Row> rows;
  for (int minutes : {1, 5, 10, 20, 60}) {
    PoolPolicy p;
    p.idle_timeout = std::chrono::minutes(minutes);
    rows.push_back({"fixed " + std::to_string(minutes) + "min", replay(p)});
  }
  rows.push_back({"adaptive", replay(adaptive)});
  PoolPolicy prewarm = adaptive;
  prewarm.adaptive.prewarm = true;
  rows.push_back({"adaptive+prewarm", replay(prewarm)});

  const double span_hours = (last - first) / 3600;
  out << pools.size() << " pool" << (pools.size() == 1 ? "" : "s") << ", " << requests << " requests over "
      << fixed_width(span_hours / 24, 1) << " days";
  if (trace.skipped || trace.unmatched)
    out << " (" << trace.skipped << " lines skipped, " << trace.unmatched << " requests matched no pool)";
  out << "; a running pool counted as " << fixed_width(request.memory_mib, 0) << " MiB\n";
  char line[160];
  std::snprintf(line, sizeof line, "%-18s %11s %11s %12s %10s\n", "POLICY", "POOL-HOURS", "MIB-HOURS", "COLD STARTS",
                "COLD REQ%");
  out << line;
  std::snprintf(line, sizeof line, "%-18s %11.2f %11.0f %12d %9.2f%%\n", "always running",
                span_hours * static_cast<double>(pools.size()),
                span_hours * static_cast<double>(pools.size()) * request.memory_mib, 0, 0.0);
  out << line;
  for (const auto& row : rows) {
    double hours = to_seconds(row.r.running) / 3600;
    std::snprintf(line, sizeof line, "%-18s %11.2f %11.0f %12llu %9.2f%%", row.policy.c_str(), hours,
                  hours * request.memory_mib, static_cast<unsigned long long>(row.r.cold_starts),
                  100.0 * static_cast<double>(row.r.cold_requests) / static_cast<double>(requests));
    out << line;
    if (row.r.prewarms) out << "  (" << row.r.prewarms << " pre-warms, " << row.r.prewarm_hits << " met their request)";
    out << "\n";
  }
  out << "Cold starts: requests that met the pool stopped (each wakes it); cold requests also count those that came "
         "while it started (0.5 s). adaptive: a cold start priced at "
      << request.cold_start_cost << " of running time, windows from " << request.adaptive_min << " to "
      << request.adaptive_max << ".\n";
  return kOk;
}

}  // namespace idlepool::ctl
