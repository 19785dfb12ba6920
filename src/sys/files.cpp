#include "idlepool/sys/files.h"

#include <fcntl.h>
#include <glob.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>

#include "idlepool/sys/unique_fd.h"

namespace idlepool::sys {

Result<std::string> BoundedFiles::read(const std::string& path) {
  // O_NONBLOCK: opening a FIFO must not wait for a writer; it is refused below like any other non-file.
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY));
  if (!fd.valid()) return Error::from_errno("cannot open " + path, errno);
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return Error::from_errno("cannot stat " + path, errno);
  if (!S_ISREG(st.st_mode)) return Error{path + " is not a regular file", EINVAL};
  if (static_cast<uint64_t>(st.st_size) > kMaxFileBytes)
    return Error{path + " is larger than " + std::to_string(kMaxFileBytes >> 10) + " KiB", EFBIG};
  std::string out;
  char buf[8192];
  for (;;) {
    ssize_t n = ::read(fd.get(), buf, sizeof(buf));
    if (n < 0) {
      if (errno == EINTR) continue;
      return Error::from_errno("cannot read " + path, errno);
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
    if (out.size() > kMaxFileBytes)  // it grew while being read
      return Error{path + " is larger than " + std::to_string(kMaxFileBytes >> 10) + " KiB", EFBIG};
  }
  return out;
}

Result<std::vector<std::string>> BoundedFiles::glob(const std::string& pattern) {
  glob_t g{};
  int r = ::glob(pattern.c_str(), GLOB_ERR | GLOB_MARK, nullptr, &g);
  std::vector<std::string> out;
  if (r == GLOB_NOMATCH) return out;
  if (r != 0) {
    globfree(&g);
    return Error{"cannot expand " + pattern + (r == GLOB_NOSPACE ? ": out of memory" : ": a directory is unreadable"),
                 EIO};
  }
  if (g.gl_pathc > kMaxGlobMatches) {
    globfree(&g);
    return Error{pattern + " names more than " + std::to_string(kMaxGlobMatches) + " files", E2BIG};
  }
  for (size_t i = 0; i < g.gl_pathc; ++i) {
    std::string p = g.gl_pathv[i];
    if (!p.empty() && p.back() != '/') out.push_back(std::move(p));  // GLOB_MARK: directories end in '/'
  }
  globfree(&g);
  std::sort(out.begin(), out.end());
  return out;
}

std::string BoundedFiles::canonical(const std::string& path) {
  std::error_code ec;
  std::filesystem::path p(path);
  if (!p.is_absolute()) return {};
  auto dir = std::filesystem::canonical(p.parent_path(), ec);
  if (ec) return {};
  return (dir / p.filename()).string();
}

}  // namespace idlepool::sys
