#include "idlepool/core/php_fpm.h"

#include "idlepool/core/config.h"

namespace idlepool {
namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

std::string unquote(std::string_view v) {
  if (v.size() >= 2 && (v.front() == '"' || v.front() == '\'') && v.back() == v.front()) v = v.substr(1, v.size() - 2);
  return std::string(v);
}

std::string expand_pool(std::string v, const std::string& pool) {
  for (size_t at; (at = v.find("$pool")) != std::string::npos;) v.replace(at, 5, pool);
  return v;
}

}  // namespace

Result<int> parse_php_fpm_seconds(std::string_view text) {
  // php-fpm's times have idlepool's duration grammar: N, Ns, Nm, Nh, Nd.
  auto d = parse_duration(trim(text));
  if (!d) return Error{"'" + std::string(trim(text)) + "' is not a time (N, Ns, Nm, Nh or Nd)", EINVAL};
  return static_cast<int>(d->count());
}

Result<PhpFpmConfig> parse_php_fpm_config(std::string_view text, const std::string& file_name) {
  PhpFpmConfig cfg;
  std::string section;
  size_t start = 0;
  int line_no = 0;
  while (start <= text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = trim(text.substr(start, end - start));
    start = end + 1;
    ++line_no;
    if (line.empty() || line.front() == ';' || line.front() == '#') {
      if (end == text.size()) break;
      continue;
    }
    auto where = [&] { return file_name + ":" + std::to_string(line_no) + ": "; };
    if (line.front() == '[') {
      if (line.back() != ']') return Error{where() + "section header without ']'", EINVAL};
      section = std::string(trim(line.substr(1, line.size() - 2)));
      if (section.empty()) return Error{where() + "empty section name", EINVAL};
      if (section != "global") cfg.pools.push_back({section, "", ""});
      if (end == text.size()) break;
      continue;
    }
    size_t eq = line.find('=');
    if (eq == std::string_view::npos) return Error{where() + "expected 'key = value'", EINVAL};
    std::string key(trim(line.substr(0, eq)));
    std::string value = unquote(trim(line.substr(eq + 1)));
    if (key == "include") {
      cfg.includes.push_back(value);
    } else if (section == "global" && key == "process_control_timeout") {
      auto s = parse_php_fpm_seconds(value);
      if (!s) return Error{where() + "process_control_timeout: " + s.error().message, EINVAL};
      cfg.process_control_timeout_s = *s;
    } else if (key == "listen" && !section.empty() && section != "global") {
      cfg.pools.back().listen = expand_pool(value, section);
    } else if (key == "pm" && !section.empty() && section != "global") {
      cfg.pools.back().pm = value;
    }
    if (end == text.size()) break;
  }
  return cfg;
}

void merge_php_fpm_config(PhpFpmConfig& into, const PhpFpmConfig& included) {
  into.pools.insert(into.pools.end(), included.pools.begin(), included.pools.end());
  if (included.process_control_timeout_s) into.process_control_timeout_s = included.process_control_timeout_s;
}

StopSafety assess_php_fpm(const StopSafetyInput& in) {
  StopSafety out;
  if (!in.fpm) {
    // Without its configuration the unlink hazard cannot be ruled out for unix sockets.
    if (!in.socket_unix_paths.empty())
      out.unsafe = "cannot read its php-fpm configuration (" + in.fpm_config_problem +
                   "), so php-fpm may unlink the socket unit's path at exit";
    return out;
  }
  for (const auto& pool : in.fpm->pools) {
    for (const auto& path : in.socket_unix_paths) {
      if (pool.listen == path)
        out.unsafe = "php-fpm pool [" + pool.pool + "] listens on " + path +
                     ", the socket unit's own path: php-fpm unlinks it when it exits and the pool could never wake "
                     "again (listen on an alias, e.g. " + path + ".inherited, passed in FPM_SOCKETS)";
    }
  }
  if (in.kill_signal != 3)
    out.warnings.push_back("the service stops with signal " + std::to_string(in.kill_signal) +
                           ", which php-fpm takes as 'terminate now'; set KillSignal=SIGQUIT for a graceful stop");
  if (!in.fpm->process_control_timeout_s || *in.fpm->process_control_timeout_s == 0)
    out.warnings.push_back("php-fpm's process_control_timeout is 0, so a graceful SIGQUIT turns into SIGTERM at "
                           "once; set process_control_timeout in [global] (e.g. 10s)");
  return out;
}

}  // namespace idlepool
