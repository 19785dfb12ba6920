// php-fpm's configuration as php-fpm reads it (wire/php_fpm_config) and the php-fpm kind's stop-safety rules
// (kinds/php_fpm), on Debian's files as shipped and on what a site's files can hold; and the bounded file reader the
// daemon reads them with, on a FIFO, /dev/zero and an oversized file.
#include "idlepool/kinds/php_fpm.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <csignal>
#include <fstream>
#include <map>

#include "idlepool/kinds/service_kind.h"
#include "idlepool/wire/php_fpm_config.h"

namespace idlepool {
namespace {

// Debian 12's /etc/php/8.2/fpm/php-fpm.conf (comments trimmed) and pool.d/www.conf, as shipped.
const char* kDebianMain = R"(;;;;;;;;;;;;;;;;;;;;;
; FPM Configuration ;
;;;;;;;;;;;;;;;;;;;;;
[global]
pid = /run/php/php8.2-fpm.pid
error_log = /var/log/php8.2-fpm.log
;process_control_timeout = 0
include=/etc/php/8.2/fpm/pool.d/*.conf
)";
const char* kDebianWww = R"([www]
user = www-data
group = www-data
listen = /run/php/php8.2-fpm.sock
listen.owner = www-data
pm = dynamic
)";

// Files in memory; canonical() resolves the /var/run -> /run symlink as Debian has it.
class FakeFiles final : public sys::FileReader {
 public:
  std::map<std::string, std::string> files;
  std::map<std::string, int> reads;
  Result<std::string> read(const std::string& path) override {
    ++reads[path];
    auto it = files.find(path);
    if (it == files.end()) return Error{"cannot open " + path + ": No such file or directory", ENOENT};
    return it->second;
  }
  Result<std::vector<std::string>> glob(const std::string& pattern) override {
    std::vector<std::string> out;
    auto star = pattern.find('*');
    for (const auto& [name, text] : files) {
      if (star == std::string::npos
              ? name == pattern
              : name.rfind(pattern.substr(0, star), 0) == 0 && name.size() >= pattern.size() - 1 &&
                    name.compare(name.size() - (pattern.size() - star - 1), pattern.size() - star - 1,
                                 pattern.substr(star + 1)) == 0)
        out.push_back(name);
    }
    return out;
  }
  std::string canonical(const std::string& path) override {
    if (path.rfind("/var/run/", 0) == 0) return "/run/" + path.substr(9);
    return path;
  }
  std::map<std::string, sys::FileStat> owners;
  std::optional<sys::FileStat> stat(const std::string& path) override {
    if (auto it = owners.find(path); it != owners.end()) return it->second;
    auto file = files.find(path);
    if (file == files.end()) return std::nullopt;
    // A file's time changes with its text.
    return sys::FileStat{0, "root", S_IFREG | 0644, static_cast<int64_t>(std::hash<std::string>{}(file->second))};
  }
};

wire::IncludeReader reader(FakeFiles& f) {
  return [&f](const std::string& pattern) -> Result<std::vector<wire::NamedText>> {
    std::vector<wire::NamedText> out;
    auto names = f.glob(pattern);
    for (const auto& n : *names) out.push_back({n, *f.read(n)});
    return out;
  };
}

TEST(PhpFpmConfig, ReadsDebiansConfigurationWithItsIncludesWhereTheyStand) {
  FakeFiles f;
  f.files["/etc/php/8.2/fpm/pool.d/www.conf"] = kDebianWww;
  f.files["/etc/php/8.2/fpm/pool.d/site.conf"] = "[site]\nlisten = 127.0.0.1:9001\npm = ondemand\n";
  auto c = wire::parse_fpm_config(kDebianMain, "/etc/php/8.2/fpm/php-fpm.conf", reader(f));
  ASSERT_TRUE(c.ok()) << c.error().message;
  ASSERT_EQ(c->pools.size(), 2u);
  EXPECT_EQ(c->pools[0].name, "site") << "glob order";
  EXPECT_EQ(c->pools[1].get("listen"), "/run/php/php8.2-fpm.sock");
  EXPECT_EQ(c->pools[1].get("pm"), "dynamic");
  EXPECT_EQ(c->global.get("pid"), "/run/php/php8.2-fpm.pid");
  EXPECT_FALSE(c->global.get("process_control_timeout")) << "commented out";
  EXPECT_EQ(c->files.size(), 3u);
  const auto* d = c->pools[1].find("listen");
  ASSERT_NE(d, nullptr);
  EXPECT_EQ(d->file, "/etc/php/8.2/fpm/pool.d/www.conf");
  EXPECT_EQ(d->line, 4);
}

TEST(PhpFpmConfig, IncludedTextContinuesTheSectionItLeavesOpen) {
  // php-fpm keeps parsing into the pool an included file opened last: a line after the include belongs to it.
  FakeFiles f;
  f.files["/etc/inc/a.conf"] = "[a]\nlisten = /run/a.sock\n";
  auto c = wire::parse_fpm_config("[global]\ninclude = /etc/inc/*.conf\npm = static\n", "main.conf", reader(f));
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_EQ(c->pool("a")->get("pm"), "static");
  EXPECT_FALSE(c->global.get("pm"));
}

TEST(PhpFpmConfig, ValuesQuotesCommentsPoolNamesAndMergedSections) {
  FakeFiles f;
  auto c = wire::parse_fpm_config(
      "[global]\nprocess_control_timeout = 10s ; graceful\n[site]\nlisten = \"/run/php/$pool.sock.inherited\"\n"
      "# comment\nphp_admin_value[error_log] = '/var/log/$pool;x.log'\n[other]\nlisten=127.0.0.1:8888\n"
      "[site]\npm = ondemand\n",
      "x.conf", reader(f));
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_EQ(c->global.get("process_control_timeout"), "10s");
  ASSERT_EQ(c->pools.size(), 2u) << "a section named twice is one pool";
  EXPECT_EQ(c->pool("site")->get("listen"), "/run/php/site.sock.inherited");
  EXPECT_EQ(c->pool("site")->find("listen")->raw, "\"/run/php/$pool.sock.inherited\"");
  EXPECT_EQ(c->pool("site")->get("php_admin_value[error_log]"), "/var/log/site;x.log") << "; inside quotes is text";
  EXPECT_EQ(c->pool("site")->get("pm"), "ondemand");
  EXPECT_EQ(c->pool("other")->get("listen"), "127.0.0.1:8888");
  EXPECT_EQ(*wire::parse_fpm_seconds("2m"), 120);
  EXPECT_FALSE(wire::parse_fpm_seconds("soon").ok());
  EXPECT_FALSE(wire::parse_fpm_seconds("-1").ok());
}

TEST(PhpFpmConfig, RelativeIncludesAreRelativeToThePrefixNotTheFile) {
  FakeFiles f;
  f.files["/opt/php/etc/pools/a.conf"] = "[a]\nlisten = /run/a.sock\n";
  auto c = wire::parse_fpm_config("include = etc/pools/*.conf\n", "/etc/elsewhere/php-fpm.conf", reader(f), "/opt/php");
  ASSERT_TRUE(c.ok()) << c.error().message;
  ASSERT_NE(c->pool("a"), nullptr);
}

TEST(PhpFpmConfig, ErrorsNameFileAndLine) {
  FakeFiles f;
  struct Case {
    const char* text;
    const char* says;
  };
  const Case cases[] = {
      {"[global]\n\n[broken\n", "/etc/php/x.conf:3: section header without ']'"},
      {"[www]\nlisten\n", "/etc/php/x.conf:2: expected 'key = value'"},
      {"[www]\nlisten = \"/run/x.sock\n", "/etc/php/x.conf:2: listen: unterminated quoted value"},
      {"[www]\n = 3\n", "/etc/php/x.conf:2: a value without a key"},
  };
  for (const auto& c : cases) {
    auto r = wire::parse_fpm_config(c.text, "/etc/php/x.conf", reader(f));
    ASSERT_FALSE(r.ok()) << c.text;
    EXPECT_NE(r.error().message.find(c.says), std::string::npos) << r.error().message;
  }
  // An include that includes itself: refused at php-fpm's depth, with where.
  f.files["/etc/loop.conf"] = "include = /etc/loop.conf\n";
  auto loop = wire::parse_fpm_config("include = /etc/loop.conf\n", "/etc/main.conf", reader(f));
  ASSERT_FALSE(loop.ok());
  EXPECT_NE(loop.error().message.find("nests more than 5 levels"), std::string::npos) << loop.error().message;
  EXPECT_NE(loop.error().message.find("/etc/loop.conf:1"), std::string::npos) << loop.error().message;
}

// ---- the php-fpm kind --------------------------------------------------------------------------------------------

class PhpFpmKindTest : public ::testing::Test {
 protected:
  FakeFiles files;
  std::unique_ptr<kinds::ServiceKind> kind = kinds::make_php_fpm_kind(files);
  ServiceUnit service;

  void SetUp() override {
    service.name = "php-fpm@site.service";
    service.exec_start = {{"/usr/sbin/php-fpm8.2", "--nodaemonize", "--fpm-config", "/etc/php/site.conf"}};
    service.kill_signal = SIGQUIT;
  }
  void pool(const std::string& listen, const std::string& pct = "10s", const std::string& pm = "ondemand") {
    files.files["/etc/php/site.conf"] =
        "[global]\nprocess_control_timeout = " + pct + "\n[site]\nlisten = " + listen + "\npm = " + pm + "\n";
  }
  std::map<std::string, std::string> owners;
  kinds::Verdict assess(std::vector<std::string> own = {"/run/php/site.sock"},
                        std::map<std::string, std::string> others = {}, bool allow = false) {
    kinds::AssessInput in;
    in.service = &service;
    in.own_unix_paths = std::move(own);
    owners = std::move(others);
    for (const auto& p : in.own_unix_paths) owners[p] = service.name;
    in.socket_owners = &owners;
    in.allow_abrupt_stop = allow;
    return kind->assess(in);
  }
};

TEST_F(PhpFpmKindTest, TheNaiveUnixPoolIsUnsafe) {
  pool("/run/php/site.sock");
  auto v = assess();
  ASSERT_TRUE(v.unsafe.has_value());
  EXPECT_NE(v.unsafe->find("php-fpm pool [site] listens on /run/php/site.sock, the socket unit's own path"),
            std::string::npos)
      << *v.unsafe;
  EXPECT_NE(v.unsafe->find("/etc/php/site.conf:4"), std::string::npos) << "says where: " << *v.unsafe;
}

TEST_F(PhpFpmKindTest, TheSamePathUnderAnotherNameIsTheSameFile) {
  pool("/var/run/php/site.sock");  // /var/run is /run
  auto v = assess();
  ASSERT_TRUE(v.unsafe.has_value()) << "compared as strings, /var/run/php/site.sock would pass";
  EXPECT_NE(v.unsafe->find("/run/php/site.sock"), std::string::npos);
}

TEST_F(PhpFpmKindTest, TheAliasNameIsSafeAndOndemandCanBeNudged) {
  pool("/run/php/site.sock.inherited");
  auto v = assess();
  EXPECT_FALSE(v.unsafe.has_value()) << *v.unsafe;
  EXPECT_TRUE(v.warnings.empty());
  EXPECT_TRUE(v.nudge_on_stall);
  pool("/run/php/site.sock.inherited", "10s", "dynamic");
  EXPECT_FALSE(assess().nudge_on_stall);
}

TEST_F(PhpFpmKindTest, ListeningOnAnotherPoolsSocketIsUnsafe) {
  pool("/run/php/other.sock");
  auto v = assess({"/run/php/site.sock"}, {{"/run/php/other.sock", "php-fpm@other.service"}});
  ASSERT_TRUE(v.unsafe.has_value());
  EXPECT_NE(v.unsafe->find("the socket of php-fpm@other.service"), std::string::npos) << *v.unsafe;
}

TEST_F(PhpFpmKindTest, AListenItCannotReadBlocksTheStop) {
  for (const char* bad : {"localhost:9000", "what", "[::1:9000", "127.0.0.1:99999"}) {
    pool(bad);
    auto v = assess();
    ASSERT_TRUE(v.unsafe.has_value()) << bad;
    EXPECT_NE(v.unsafe->find("/etc/php/site.conf:4"), std::string::npos) << *v.unsafe;
  }
  files.files["/etc/php/site.conf"] = "[global]\nprocess_control_timeout = 10s\n[site]\npm = ondemand\n";
  ASSERT_TRUE(assess().unsafe.has_value()) << "no listen at all";
  for (const char* good : {"127.0.0.1:9000", "9000", "[::1]:9000", "/run/php/site.sock.inherited"}) {
    pool(good);
    EXPECT_FALSE(assess().unsafe.has_value()) << good << ": " << *assess().unsafe;
  }
}

TEST_F(PhpFpmKindTest, AStopThatCutsRequestsIsRefusedUnlessAllowed) {
  pool("127.0.0.1:9000", "0");
  auto v = assess({});
  ASSERT_TRUE(v.unsafe.has_value()) << "process_control_timeout = 0: SIGQUIT becomes SIGTERM at once";
  EXPECT_NE(v.unsafe->find("process_control_timeout is 0"), std::string::npos);
  pool("127.0.0.1:9000", "10s");
  service.kill_signal = SIGTERM;
  v = assess({});
  ASSERT_TRUE(v.unsafe.has_value());
  EXPECT_NE(v.unsafe->find("KillSignal=SIGQUIT"), std::string::npos);
  v = assess({}, {}, /*allow=*/true);
  EXPECT_FALSE(v.unsafe.has_value());
  ASSERT_EQ(v.warnings.size(), 1u);
  EXPECT_NE(v.warnings[0].find("allow-abrupt-stop"), std::string::npos);
  files.files["/etc/php/site.conf"] = "[site]\nlisten = 127.0.0.1:9000\n";
  service.kill_signal = SIGQUIT;
  EXPECT_TRUE(assess({}).unsafe.has_value()) << "process_control_timeout unset is php-fpm's default, 0";
  pool("127.0.0.1:9000", "soon");
  v = assess({});
  ASSERT_TRUE(v.unsafe.has_value());
  EXPECT_NE(v.unsafe->find("/etc/php/site.conf:2: process_control_timeout"), std::string::npos) << *v.unsafe;
}

TEST_F(PhpFpmKindTest, AnUnreadableConfigurationIsUnsafe) {
  auto v = assess();
  ASSERT_TRUE(v.unsafe.has_value());
  EXPECT_NE(v.unsafe->find("cannot open /etc/php/site.conf"), std::string::npos) << *v.unsafe;
  service.exec_start = {{"/opt/bin/php-fpm", "--nodaemonize"}};
  v = assess();
  ASSERT_TRUE(v.unsafe.has_value());
  EXPECT_NE(v.unsafe->find("cannot tell which php-fpm configuration"), std::string::npos);
}

// opcache: every wake compiles the site again unless a file cache keeps the compiled scripts; a file cache another
// user can write is code that user puts into this pool. Warnings only: nothing here stops or blocks a stop.
TEST_F(PhpFpmKindTest, OpcacheWithoutAFileCacheOrWithOneOthersCanWriteIsWarnedAbout) {
  auto site = [&](const std::string& extra) {
    files.files["/etc/php/site.conf"] =
        "[global]\nprocess_control_timeout = 10s\n[site]\nuser = site\nlisten = /run/php/site.sock.inherited\n" + extra;
  };
  auto warned = [&](const std::string& says) {
    auto v = assess();
    EXPECT_FALSE(v.unsafe.has_value());
    for (const auto& w : v.warnings)
      if (w.find(says) != std::string::npos) return true;
    return false;
  };
  auto opcache_warnings = [&]() {
    size_t n = 0;
    for (const auto& w : assess().warnings) n += w.find("opcache") != std::string::npos;
    return n;
  };
  // Debian's php.ini and conf.d: opcache loaded by 10-opcache.ini, on by default.
  files.files["/etc/php/8.2/fpm/php.ini"] = "[PHP]\nengine = On\n[opcache]\n;opcache.enable=1\n";
  files.files["/etc/php/8.2/fpm/conf.d/10-opcache.ini"] = "; priority=10\nzend_extension=opcache.so\n";
  site("");
  EXPECT_TRUE(warned("php-fpm pool [site]: opcache keeps no file cache, so every wake compiles the site's scripts"));
  // The ini files are read again only when one changes (a pool is judged at every start; a thousand share them).
  int reads = files.reads["/etc/php/8.2/fpm/php.ini"];
  assess();
  EXPECT_EQ(files.reads["/etc/php/8.2/fpm/php.ini"], reads);
  files.files["/etc/php/8.2/fpm/php.ini"] += "[opcache]\nopcache.enable = 0\n";
  EXPECT_FALSE(warned("opcache keeps no file cache"));
  EXPECT_EQ(files.reads["/etc/php/8.2/fpm/php.ini"], reads + 1);
  files.files["/etc/php/8.2/fpm/php.ini"] = "[PHP]\nengine = On\n";

  site("php_admin_value[opcache.file_cache] = /var/cache/oc/site\n");
  files.owners["/var/cache/oc"] = {0, "root", S_IFDIR | 0755};
  files.owners["/var/cache/oc/site"] = {1001, "site", S_IFDIR | 0700};
  EXPECT_EQ(opcache_warnings(), 0u) << "the pool's user's alone";
  files.owners["/var/cache/oc/site"] = {1001, "site", S_IFDIR | 0777};
  EXPECT_TRUE(
      warned("opcache.file_cache /var/cache/oc/site (/etc/php/site.conf:6) can be written by users other "
             "than site (mode 0777): another site could put code there"));
  files.owners["/var/cache/oc/site"] = {1002, "other", S_IFDIR | 0700};
  EXPECT_TRUE(warned("belongs to other, not to the pool's user site: other can put code there"));
  files.owners["/var/cache/oc/site"] = {0, "root", S_IFDIR | 0700};
  EXPECT_TRUE(warned("belongs to root: the pool's user site cannot write it"));
  files.owners["/var/cache/oc/site"] = {1001, "site", S_IFDIR | 0700};
  files.owners["/var/cache/oc"] = {0, "root", S_IFDIR | 0777};
  EXPECT_TRUE(warned("the directory that holds opcache.file_cache /var/cache/oc/site"));
  files.owners["/var/cache/oc"] = {0, "root", S_IFDIR | 01777};  // sticky, like /tmp: nobody replaces another's
  EXPECT_EQ(opcache_warnings(), 0u);
  files.owners.erase("/var/cache/oc/site");
  EXPECT_TRUE(warned("/var/cache/oc/site (/etc/php/site.conf:6) is not a directory: nothing is kept"));

  // Set for the whole master (php.ini, or -d on its command line): the same judgement, saying where.
  site("");
  files.files["/etc/php/8.2/fpm/conf.d/99-cache.ini"] = "opcache.file_cache = \"/var/cache/oc/site\"\n";
  files.owners["/var/cache/oc/site"] = {1001, "site", S_IFDIR | 0770};
  files.owners["/var/cache/oc"] = {0, "root", S_IFDIR | 0755};
  EXPECT_TRUE(warned("/var/cache/oc/site (/etc/php/8.2/fpm/conf.d/99-cache.ini:1) can be written by users other"));
  files.files.erase("/etc/php/8.2/fpm/conf.d/99-cache.ini");
  service.exec_start[0].push_back("-dopcache.file_cache=/var/cache/oc/site");
  EXPECT_TRUE(warned("(-d on its command line) can be written"));

  // Off, not loaded, or not known: nothing to say.
  for (const char* off : {"php_admin_flag[opcache.enable] = off\n", "php_flag[opcache.enable] = 0\n",
                          "php_admin_value[opcache.enable] = \"false\"\n"}) {
    site(off);
    EXPECT_EQ(opcache_warnings(), 0u) << off;
  }
  site("");
  service.exec_start[0].push_back("-n");  // no php.ini: opcache is not loaded
  EXPECT_EQ(opcache_warnings(), 0u);
  service.exec_start[0] = {"/opt/php/sbin/php-fpm", "--fpm-config", "/etc/php/site.conf"};  // which php.ini? unknown
  EXPECT_EQ(opcache_warnings(), 0u);
  service.exec_start[0] = {"/usr/sbin/php-fpm8.2", "--fpm-config", "/etc/php/site.conf"};
  files.files["/etc/php/8.2/fpm/php.ini"] = "[PHP\nengine = \"On\n";  // garbage: not known, no guess, not unsafe
  EXPECT_EQ(opcache_warnings(), 0u);
  EXPECT_FALSE(assess().unsafe.has_value());
}

TEST(PhpIniFiles, FromTheCommandLineAsPhpReadsThem) {
  auto f = kinds::php_ini_files({"/usr/sbin/php-fpm8.2", "--nodaemonize"});
  EXPECT_EQ(f.ini, "/etc/php/8.2/fpm/php.ini");
  EXPECT_EQ(f.scan_dir, "/etc/php/8.2/fpm/conf.d");
  f = kinds::php_ini_files({"php-fpm8.3", "-c", "/srv/ini", "-d", "opcache.enable=0", "--define=memory_limit=1G"});
  EXPECT_EQ(f.ini, "/srv/ini/php.ini");
  ASSERT_EQ(f.defines.size(), 2u);
  EXPECT_EQ(f.defines[0], (std::pair<std::string, std::string>{"opcache.enable", "0"}));
  EXPECT_EQ(f.defines[1], (std::pair<std::string, std::string>{"memory_limit", "1G"}));
  EXPECT_EQ(kinds::php_ini_files({"php-fpm8.2", "--php-ini=/srv/my.ini"}).ini, "/srv/my.ini");
  f = kinds::php_ini_files({"php-fpm8.2", "-n"});
  EXPECT_EQ(f.ini, "");
  EXPECT_EQ(f.scan_dir, "");
  EXPECT_EQ(kinds::php_ini_files({"/opt/php-fpm"}).ini, "");
}

// Debian's own php.ini and conf.d as installed here (php8.2-fpm loads opcache, on by default): read as PHP reads them.
TEST(PhpIniFiles, DebiansOwnLoadOpcacheWithoutAFileCache) {
  if (::access("/etc/php/8.2/fpm/conf.d/10-opcache.ini", R_OK) != 0) GTEST_SKIP() << "php8.2-fpm is not installed";
  char dir[] = "/tmp/idlepool-ini-XXXXXX";
  ASSERT_NE(::mkdtemp(dir), nullptr);
  const std::string conf = std::string(dir) + "/site.conf";
  std::ofstream(conf) << "[global]\nprocess_control_timeout = 10s\n[site]\nuser = www-data\nlisten = /run/s.sock\n";
  sys::BoundedFiles files;
  auto kind = kinds::make_php_fpm_kind(files);
  ServiceUnit s;
  s.exec_start = {{"/usr/sbin/php-fpm8.2", "--fpm-config", conf}};
  s.kill_signal = SIGQUIT;
  kinds::AssessInput in;
  in.service = &s;
  auto v = kind->assess(in);
  ::unlink(conf.c_str());
  ::rmdir(dir);
  bool warned = false;
  for (const auto& w : v.warnings) warned = warned || w.find("opcache keeps no file cache") != std::string::npos;
  EXPECT_TRUE(warned) << "Debian's php.ini and 10-opcache.ini load opcache, with no file cache";
}

TEST(PhpFpmInvocation, ConfigAndPrefixFromTheCommandLine) {
  auto a = kinds::fpm_invocation({"/usr/sbin/php-fpm8.2", "--nodaemonize", "--fpm-config", "/etc/x.conf"});
  EXPECT_EQ(a.config, "/etc/x.conf");
  EXPECT_EQ(a.prefix, "/usr");
  auto b = kinds::fpm_invocation({"/usr/sbin/php-fpm8.1", "-p", "/srv/php", "--nodaemonize"});
  EXPECT_EQ(b.config, "/etc/php/8.1/fpm/php-fpm.conf");
  EXPECT_EQ(b.prefix, "/srv/php");
  EXPECT_EQ(kinds::fpm_invocation({"php-fpm", "-y/etc/y.conf"}).config, "/etc/y.conf");
  EXPECT_TRUE(kinds::runs_php_fpm({{"/usr/sbin/php-fpm8.2"}}));
  EXPECT_FALSE(kinds::runs_php_fpm({{"/usr/bin/python3", "php-fpm"}}));
}

// ---- the bounded reader, on the real filesystem --------------------------------------------------------------------

TEST(BoundedFiles, RefusesWhatIsNotARegularFileOfReasonableSize) {
  char dir[] = "/tmp/idlepool-files-XXXXXX";
  ASSERT_NE(::mkdtemp(dir), nullptr);
  std::string d = dir;
  sys::BoundedFiles files;
  // A FIFO with no writer: opening it for reading would block forever without O_NONBLOCK.
  ASSERT_EQ(::mkfifo((d + "/fifo.conf").c_str(), 0600), 0);
  auto fifo = files.read(d + "/fifo.conf");
  ASSERT_FALSE(fifo.ok());
  EXPECT_NE(fifo.error().message.find("not a regular file"), std::string::npos) << fifo.error().message;
  auto zero = files.read("/dev/zero");
  ASSERT_FALSE(zero.ok()) << "/dev/zero would never end";
  EXPECT_NE(zero.error().message.find("/dev/zero is not a regular file"), std::string::npos);
  {
    std::ofstream big(d + "/big.conf");
    big << std::string(sys::BoundedFiles::kMaxFileBytes + 1, ';');
  }
  auto large = files.read(d + "/big.conf");
  ASSERT_FALSE(large.ok());
  EXPECT_NE(large.error().message.find("larger than"), std::string::npos);
  {
    std::ofstream ok(d + "/ok.conf");
    ok << "[a]\nlisten = /run/a.sock\n";
  }
  ASSERT_EQ(::symlink((d + "/ok.conf").c_str(), (d + "/link.conf").c_str()), 0);
  EXPECT_EQ(*files.read(d + "/link.conf"), "[a]\nlisten = /run/a.sock\n") << "symlinks to files are fine";
  auto globbed = files.glob(d + "/*.conf");
  ASSERT_TRUE(globbed.ok());
  EXPECT_EQ(globbed->size(), 4u);
  EXPECT_TRUE(files.glob(d + "/nothing*.conf")->empty());
  EXPECT_EQ(files.canonical(d + "/../" + d.substr(5) + "/x.sock"), d + "/x.sock");
  EXPECT_EQ(files.canonical("/no/such/dir/x.sock"), "");
  for (const char* n : {"/fifo.conf", "/big.conf", "/ok.conf", "/link.conf"}) ::unlink((d + n).c_str());
  ::rmdir(dir);
}

TEST(BoundedFiles, AFifoInAPoolsIncludesMakesItUnsafeNotHung) {
  char dir[] = "/tmp/idlepool-fpm-XXXXXX";
  ASSERT_NE(::mkdtemp(dir), nullptr);
  std::string d = dir;
  {
    std::ofstream main(d + "/php-fpm.conf");
    main << "[global]\nprocess_control_timeout = 10s\ninclude = " << d << "/pool.d/*.conf\n";
  }
  ASSERT_EQ(::mkdir((d + "/pool.d").c_str(), 0700), 0);
  ASSERT_EQ(::mkfifo((d + "/pool.d/evil.conf").c_str(), 0600), 0);
  sys::BoundedFiles files;
  auto kind = kinds::make_php_fpm_kind(files);
  ServiceUnit s;
  s.exec_start = {{"/usr/sbin/php-fpm8.2", "--fpm-config", d + "/php-fpm.conf"}};
  s.kill_signal = SIGQUIT;
  kinds::AssessInput in;
  in.service = &s;
  auto v = kind->assess(in);
  ASSERT_TRUE(v.unsafe.has_value());
  EXPECT_NE(v.unsafe->find("evil.conf is not a regular file"), std::string::npos) << *v.unsafe;
  ::unlink((d + "/pool.d/evil.conf").c_str());
  ASSERT_EQ(::symlink("/dev/zero", (d + "/pool.d/zero.conf").c_str()), 0);
  v = kind->assess(in);
  ASSERT_TRUE(v.unsafe.has_value());
  EXPECT_NE(v.unsafe->find("is not a regular file"), std::string::npos) << *v.unsafe;
  ::unlink((d + "/pool.d/zero.conf").c_str());
  ::rmdir((d + "/pool.d").c_str());
  ::unlink((d + "/php-fpm.conf").c_str());
  ::rmdir(dir);
}

}  // namespace
}  // namespace idlepool
