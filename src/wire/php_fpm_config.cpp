#include "idlepool/wire/php_fpm_config.h"

#include <charconv>

namespace idlepool::wire {
namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

std::string expand_pool(std::string v, const std::string& pool) {
  for (size_t at = 0; (at = v.find("$pool", at)) != std::string::npos; at += pool.size()) v.replace(at, 5, pool);
  return v;
}

// A value as php's INI scanner reads it: a quoted string up to its closing quote, else the text up to a `;` comment.
// Returns nullopt for an unterminated quote.
std::optional<std::pair<std::string, std::string>> read_value(std::string_view v) {
  v = trim(v);
  if (!v.empty() && (v.front() == '"' || v.front() == '\'')) {
    char q = v.front();
    size_t end = v.find(q, 1);
    if (end == std::string_view::npos) return std::nullopt;
    std::string_view after = trim(v.substr(end + 1));
    if (!after.empty() && after.front() != ';') return std::nullopt;
    return std::pair{std::string(v.substr(1, end - 1)), std::string(v.substr(0, end + 1))};
  }
  size_t semi = v.find(';');
  if (semi != std::string_view::npos) v = trim(v.substr(0, semi));
  return std::pair{std::string(v), std::string(v)};
}

class Parser {
 public:
  Parser(const IncludeReader& include, std::string_view prefix) : include_(include), prefix_(prefix) {
    config_.global.name = "global";
  }

  Result<void> parse(std::string_view text, const std::string& file, int depth) {
    config_.files.push_back(file);
    size_t start = 0;
    int line_no = 0;
    while (start < text.size()) {
      size_t end = text.find('\n', start);
      if (end == std::string_view::npos) end = text.size();
      std::string_view line = trim(text.substr(start, end - start));
      start = end + 1;
      ++line_no;
      if (auto r = parse_line(line, file, line_no, depth); !r) return r;
    }
    return {};
  }

  FpmConfig take() { return std::move(config_); }

 private:
  Result<void> parse_line(std::string_view line, const std::string& file, int line_no, int depth) {
    if (line.empty() || line.front() == ';' || line.front() == '#') return {};
    auto where = [&] { return file + ":" + std::to_string(line_no) + ": "; };
    if (line.front() == '[') {
      size_t close = line.find(']');
      if (close == std::string_view::npos) return Error{where() + "section header without ']'", EINVAL};
      std::string name(trim(line.substr(1, close - 1)));
      if (name.empty()) return Error{where() + "empty section name", EINVAL};
      open_section(name, file, line_no);
      return {};
    }
    size_t eq = line.find('=');
    if (eq == std::string_view::npos) return Error{where() + "expected 'key = value'", EINVAL};
    std::string key(trim(line.substr(0, eq)));
    if (key.empty()) return Error{where() + "a value without a key", EINVAL};
    auto value = read_value(line.substr(eq + 1));
    if (!value) return Error{where() + key + ": unterminated quoted value", EINVAL};
    if (key == "include") return include(value->first, file, line_no, depth);
    FpmSection& s = current();
    std::string v = current_ == kGlobal ? value->first : expand_pool(value->first, s.name);
    s.directives.push_back({std::move(key), std::move(v), std::move(value->second), file, line_no});
    return {};
  }

  Result<void> include(const std::string& pattern, const std::string& file, int line_no, int depth) {
    auto where = file + ":" + std::to_string(line_no) + ": ";
    if (depth + 1 > kFpmMaxIncludeDepth)
      return Error{where + "include nests more than " + std::to_string(kFpmMaxIncludeDepth) + " levels deep", ELOOP};
    std::string full = pattern;
    if (full.empty() || full.front() != '/') full = std::string(prefix_) + "/" + full;
    auto files = include_(full);
    if (!files) return Error{where + "include = " + pattern + ": " + files.error().message, files.error().code};
    for (const auto& f : *files) {
      if (config_.files.size() >= kFpmMaxFiles)
        return Error{where + "more than " + std::to_string(kFpmMaxFiles) + " files included", E2BIG};
      if (auto r = parse(f.text, f.name, depth + 1); !r) return r;
    }
    return {};
  }

  void open_section(const std::string& name, const std::string& file, int line_no) {
    if (name == "global") {
      current_ = kGlobal;
      return;
    }
    for (size_t i = 0; i < config_.pools.size(); ++i)
      if (config_.pools[i].name == name) {
        current_ = i;
        return;
      }
    config_.pools.push_back({name, {}, file, line_no});
    current_ = config_.pools.size() - 1;
  }

  FpmSection& current() { return current_ == kGlobal ? config_.global : config_.pools[current_]; }

  static constexpr size_t kGlobal = SIZE_MAX;
  const IncludeReader& include_;
  std::string_view prefix_;
  FpmConfig config_;
  size_t current_ = kGlobal;
};

}  // namespace

const FpmDirective* FpmSection::find(std::string_view key) const {
  for (auto it = directives.rbegin(); it != directives.rend(); ++it)
    if (it->key == key) return &*it;
  return nullptr;
}

std::optional<std::string> FpmSection::get(std::string_view key) const {
  const FpmDirective* d = find(key);
  if (!d) return std::nullopt;
  return d->value;
}

const FpmSection* FpmConfig::pool(std::string_view name) const {
  for (const auto& p : pools)
    if (p.name == name) return &p;
  return nullptr;
}

Result<FpmConfig> parse_fpm_config(std::string_view text, const std::string& file, const IncludeReader& include,
                                   std::string_view prefix) {
  Parser p(include, prefix);
  if (auto r = p.parse(text, file, 0); !r) return r.error();
  return p.take();
}

Result<int> parse_fpm_seconds(std::string_view text) {
  std::string_view t = trim(text);
  std::string_view digits = t;
  int mult = 1;
  if (!digits.empty()) {
    switch (digits.back()) {
      case 's':
        digits.remove_suffix(1);
        break;
      case 'm':
        mult = 60;
        digits.remove_suffix(1);
        break;
      case 'h':
        mult = 3600;
        digits.remove_suffix(1);
        break;
      case 'd':
        mult = 86400;
        digits.remove_suffix(1);
        break;
      default:
        break;
    }
  }
  int v = 0;
  auto [p, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), v);
  if (digits.empty() || ec != std::errc() || p != digits.data() + digits.size() || v < 0 || v > 365 * 86400 / mult)
    return Error{"'" + std::string(t) + "' is not a time (N, Ns, Nm, Nh or Nd)", EINVAL};
  return v * mult;
}

}  // namespace idlepool::wire
