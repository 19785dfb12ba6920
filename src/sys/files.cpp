#include "idlepool/sys/files.h"

#include <fcntl.h>
#include <glob.h>
#include <linux/posix_acl.h>
#include <linux/posix_acl_xattr.h>
#include <pwd.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
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

std::optional<FileStat> BoundedFiles::stat(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return std::nullopt;
  FileStat o{st.st_uid, std::to_string(st.st_uid), st.st_mode,
             static_cast<int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec};
  std::array<char, 1024> buf{};
  struct passwd pw {};
  struct passwd* found = nullptr;
  if (::getpwuid_r(st.st_uid, &pw, buf.data(), buf.size(), &found) == 0 && found != nullptr) o.user = found->pw_name;
  return o;
}

Result<void> write_atomically(const std::string& path, const std::string& text, mode_t mode) {
  std::string tmp = path + ".idlepool-tmp";
  UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode));
  if (!fd.valid()) return Error::from_errno("cannot write " + tmp, errno);
  size_t off = 0;
  while (off < text.size()) {
    ssize_t n = ::write(fd.get(), text.data() + off, text.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Error::from_errno("cannot write " + tmp, errno);
    off += static_cast<size_t>(n);
  }
  if (::fchmod(fd.get(), mode) != 0 || ::fsync(fd.get()) != 0) return Error::from_errno("cannot write " + tmp, errno);
  if (::rename(tmp.c_str(), path.c_str()) != 0) return Error::from_errno("cannot rename " + tmp + " to " + path, errno);
  return {};
}

Result<void> grant_group_rw(const std::string& path, gid_t group) {
  // The xattr form of an access ACL (little-endian, as on every architecture we build for): entries sorted by tag.
  constexpr uint16_t kRw = 4 | 2;
  constexpr uint32_t kNoId = static_cast<uint32_t>(ACL_UNDEFINED_ID);
  const std::array<posix_acl_xattr_entry, 4> entries{{
      {ACL_USER_OBJ, kRw, kNoId},
      {ACL_GROUP_OBJ, 0, kNoId},
      {ACL_GROUP, kRw, static_cast<uint32_t>(group)},
      {ACL_MASK, kRw, kNoId},
  }};
  const posix_acl_xattr_entry other{ACL_OTHER, 0, kNoId};
  std::string value(sizeof(posix_acl_xattr_header), '\0');
  posix_acl_xattr_header header{POSIX_ACL_XATTR_VERSION};
  std::memcpy(value.data(), &header, sizeof(header));
  for (const auto& e : entries) value.append(reinterpret_cast<const char*>(&e), sizeof(e));
  value.append(reinterpret_cast<const char*>(&other), sizeof(other));
  if (::lsetxattr(path.c_str(), "system.posix_acl_access", value.data(), value.size(), 0) != 0)
    return Error::from_errno("cannot let group " + std::to_string(group) + " use " + path +
                                 (errno == EOPNOTSUPP ? " (its filesystem has no POSIX ACLs)" : ""),
                             errno);
  return {};
}

Result<wire::FpmConfig> read_fpm_config(sys::FileReader& files, const std::string& path, const std::string& prefix) {
  auto text = files.read(path);
  if (!text) return text.error();
  wire::IncludeReader include = [&files](const std::string& pattern) -> Result<std::vector<wire::NamedText>> {
    auto names = files.glob(pattern);
    if (!names) return names.error();
    std::vector<wire::NamedText> out;
    for (const auto& n : *names) {
      auto t = files.read(n);
      if (!t) return t.error();
      out.push_back({n, std::move(*t)});
    }
    return out;
  };
  return wire::parse_fpm_config(*text, path, include, prefix);
}

}  // namespace idlepool::sys
