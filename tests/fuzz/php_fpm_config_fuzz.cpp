// Fuzzes the php-fpm configuration reader with what a site user may write into their pool's files: the input is a
// set of files (split at NUL bytes, the first the main one, file N named /etc/php/fN.conf), and an include names
// one of them or, with a glob, all. Any text parses or gets an error naming a file and line; includes that include
// each other stay within the depth and file limits.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "idlepool/wire/php_fpm_config.h"

using idlepool::wire::NamedText;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  std::vector<NamedText> files;
  for (size_t start = 0;;) {
    size_t end = in.find('\0', start);
    files.push_back({"/etc/php/f" + std::to_string(files.size()) + ".conf",
                     std::string(in.substr(start, end == std::string_view::npos ? end : end - start))});
    if (end == std::string_view::npos) break;
    start = end + 1;
  }
  size_t reads = 0;
  auto include = [&](const std::string& pattern) -> idlepool::Result<std::vector<NamedText>> {
    ++reads;
    std::vector<NamedText> out;
    for (size_t i = 1; i < files.size(); ++i)
      if (pattern.find('*') != std::string::npos || pattern == files[i].name) out.push_back(files[i]);
    return out;
  };
  auto config = idlepool::wire::parse_fpm_config(files[0].text, files[0].name, include);
  if (config) {
    if (config->files.empty() || config->files.size() > idlepool::wire::kFpmMaxFiles) __builtin_trap();
    for (const auto& pool : config->pools)
      if (pool.name.empty()) __builtin_trap();
  } else if (config.error().message.empty()) {
    __builtin_trap();
  }
  if (reads > idlepool::wire::kFpmMaxFiles) __builtin_trap();
  (void)idlepool::wire::parse_fpm_seconds(in.substr(0, 64));
  return 0;
}
