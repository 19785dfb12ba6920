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
  Result<std::string> read(const std::string& path) override {
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
