#include "idlepool/sys/php_fpm_files.h"

#include <glob.h>

#include <filesystem>
#include <regex>

#include "idlepool/sys/cgroup.h"

namespace idlepool::sys {
namespace {

std::string basename_of(const std::string& path) { return std::filesystem::path(path).filename().string(); }

}  // namespace

bool runs_php_fpm(const std::vector<std::vector<std::string>>& exec_start) {
  for (const auto& argv : exec_start)
    if (!argv.empty() && basename_of(argv[0]).rfind("php-fpm", 0) == 0) return true;
  return false;
}

std::string php_fpm_config_path(const std::vector<std::string>& argv) {
  for (size_t i = 1; i < argv.size(); ++i) {
    const std::string& a = argv[i];
    if ((a == "--fpm-config" || a == "-y") && i + 1 < argv.size()) return argv[i + 1];
    if (a.rfind("--fpm-config=", 0) == 0) return a.substr(13);
    if (a.rfind("-y", 0) == 0 && a.size() > 2) return a.substr(2);
  }
  if (argv.empty()) return {};
  // Debian: php-fpm8.2 reads /etc/php/8.2/fpm/php-fpm.conf.
  std::smatch m;
  std::string name = basename_of(argv[0]);
  if (std::regex_match(name, m, std::regex(R"(php-fpm(\d+\.\d+))"))) return "/etc/php/" + m[1].str() + "/fpm/php-fpm.conf";
  return {};
}

Result<PhpFpmConfig> read_php_fpm_config(const std::string& path) {
  auto text = read_text_file(path);
  if (!text) return text.error();
  auto cfg = parse_php_fpm_config(*text, path);
  if (!cfg) return cfg.error();
  size_t files = 1;
  for (const auto& pattern : cfg->includes) {
    std::string full = pattern;
    if (!full.empty() && full[0] != '/') full = (std::filesystem::path(path).parent_path() / pattern).string();
    glob_t g{};
    if (glob(full.c_str(), 0, nullptr, &g) == 0) {
      for (size_t i = 0; i < g.gl_pathc && files < 256; ++i, ++files) {
        auto inc_text = read_text_file(g.gl_pathv[i]);
        if (!inc_text) {
          globfree(&g);
          return inc_text.error();
        }
        auto inc = parse_php_fpm_config(*inc_text, g.gl_pathv[i]);
        if (!inc) {
          globfree(&g);
          return inc.error();
        }
        merge_php_fpm_config(*cfg, *inc);
      }
    }
    globfree(&g);
  }
  return cfg;
}

}  // namespace idlepool::sys
