// php-fpm's configuration text, read as php-fpm reads it (sapi/fpm/fpm/fpm_conf.c): INI with a [global] section and
// one section per pool; `;` comments (and `#` at the start of a line); values bare, "double" or 'single' quoted;
// $pool in a pool's values stands for its name. `include = PATTERN` is expanded where it stands: the files a glob
// names are read in order, as if their text were there, and what they say continues the section they leave open
// (php-fpm keeps parsing into the pool an included file opened last). A relative pattern is relative to php-fpm's
// prefix (--prefix, else its build prefix: /usr on Debian), not to the including file; includes nest at most 5 deep.
// A pool section that appears twice is one pool (php-fpm merges them).
//
// Pure: files come from an IncludeReader (src/sys reads them from disk, bounded; tests give text). Everything is
// kept with its file and line, so that errors and refusals can say where, and so that a pool's directives can be
// written again elsewhere (idlepoolctl adopt).
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "idlepool/result.h"

namespace idlepool::wire {

struct FpmDirective {
  std::string key;    // as written: listen, pm.max_children, php_admin_value[memory_limit]
  std::string value;  // unquoted, comment dropped, $pool expanded (in pool sections)
  std::string raw;    // the value as written (quotes kept), for writing it again
  std::string file;
  int line = 0;
};

struct FpmSection {
  std::string name;  // "global" or the pool's name
  std::vector<FpmDirective> directives;
  std::string file;  // where it was first opened
  int line = 0;
  // The last value given for `key` (php-fpm: the last one wins), if any.
  const FpmDirective* find(std::string_view key) const;
  std::optional<std::string> get(std::string_view key) const;
};

struct FpmConfig {
  FpmSection global;               // [global], and anything before the first section
  std::vector<FpmSection> pools;   // in order of first appearance
  std::vector<std::string> files;  // every file read, the main one first
  const FpmSection* pool(std::string_view name) const;
};

struct NamedText {
  std::string name;  // the file's path
  std::string text;
};
// The files an include pattern names, in glob order (a pattern that matches nothing is no error, as in php-fpm).
using IncludeReader = std::function<Result<std::vector<NamedText>>(const std::string& pattern)>;

inline constexpr int kFpmMaxIncludeDepth = 5;
inline constexpr size_t kFpmMaxFiles = 1024;

// Parses `text` (the main configuration file `file`) and everything it includes. Errors name the file and line.
Result<FpmConfig> parse_fpm_config(std::string_view text, const std::string& file, const IncludeReader& include,
                                   std::string_view prefix = "/usr");

// A time as php-fpm writes them: "10", "10s", "5m", "1h", "1d". Seconds, or an error.
Result<int> parse_fpm_seconds(std::string_view text);

}  // namespace idlepool::wire
