// The adoption plan (adopt/plan.h), on configuration text as Debian ships it and hosting panels write it.
#include <gtest/gtest.h>

#include <map>

#include "idlepool/adopt/plan.h"

namespace idlepool::adopt {
namespace {

constexpr const char* kMain = "/etc/php/8.2/fpm/php-fpm.conf";

// Debian 12's php-fpm.conf (comments dropped) and pools in pool.d.
Installation install(std::map<std::string, std::string> pool_files, std::string main =
                                                                        "[global]\npid = /run/php/php8.2-fpm.pid\n"
                                                                        "error_log = /var/log/php8.2-fpm.log\n"
                                                                        "include=/etc/php/8.2/fpm/pool.d/*.conf\n") {
  wire::IncludeReader reader = [&](const std::string& pattern) -> Result<std::vector<wire::NamedText>> {
    EXPECT_EQ(pattern, "/etc/php/8.2/fpm/pool.d/*.conf");
    std::vector<wire::NamedText> out;
    for (const auto& [name, text] : pool_files) out.push_back({"/etc/php/8.2/fpm/pool.d/" + name, text});
    return out;
  };
  auto cfg = wire::parse_fpm_config(main, kMain, reader);
  EXPECT_TRUE(cfg.ok()) << cfg.error().message;
  return {"8.2", kMain, *cfg};
}

const std::string kWww =
    "[www]\nuser = www-data\ngroup = www-data\nlisten = /run/php/php8.2-fpm.sock\nlisten.owner = www-data\n"
    "listen.group = www-data\npm = dynamic\npm.max_children = 5\npm.start_servers = 2\npm.min_spare_servers = 1\n"
    "pm.max_spare_servers = 3\n";
const std::string kTcp =
    "[site-tcp]\nuser = www-data\ngroup = www-data\nlisten = 127.0.0.1:9301\npm = ondemand\npm.max_children = 4\n"
    "php_admin_value[memory_limit] = \"96M\" ; the site's\n";

const PoolPlan& pool(const Plan& plan, const std::string& name) {
  for (const auto& p : plan.pools)
    if (p.name == name) return p;
  static PoolPlan none;
  ADD_FAILURE() << "no plan for " << name;
  return none;
}

const File* file(const PoolPlan& p, const std::string& suffix) {
  for (const auto& f : p.files)
    if (f.path.size() >= suffix.size() && f.path.compare(f.path.size() - suffix.size(), suffix.size(), suffix) == 0)
      return &f;
  return nullptr;
}

TEST(AdoptListen, ReadsAddressesAsPhpFpmDoes) {
  auto unix_path = parse_listen("/run/php/site.sock");
  ASSERT_TRUE(unix_path.ok());
  EXPECT_TRUE(unix_path->unix_socket);
  auto port = parse_listen("9000");
  ASSERT_TRUE(port.ok());
  EXPECT_EQ(port->systemd(), "0.0.0.0:9000");  // php-fpm binds INADDR_ANY for a port alone
  auto tcp = parse_listen("127.0.0.1:9301");
  ASSERT_TRUE(tcp.ok());
  EXPECT_EQ(tcp->fpm_key(), "127.0.0.1:9301");
  EXPECT_FALSE(parse_listen("[::1]:9000").ok());
  EXPECT_FALSE(parse_listen("localhost:9000").ok());
  EXPECT_FALSE(parse_listen("127.0.0.1:0").ok());
  EXPECT_FALSE(parse_listen("127.0.0.1:70000").ok());
  EXPECT_FALSE(parse_listen("relative.sock").ok());
  EXPECT_FALSE(parse_listen("/run/php/it's.sock").ok());  // would need quoting in a unit and a shell
  EXPECT_FALSE(parse_listen("/" + std::string(100, 'a')).ok());
}

TEST(AdoptPlan, UnixPoolKeepsItsAddressOwnerGroupAndModeAndEveryDirective) {
  Plan plan = make_plan({install({{"www.conf", kWww}, {"site-tcp.conf", kTcp}})}, {"www"}, {});
  const PoolPlan& www = pool(plan, "www");
  ASSERT_TRUE(www.ok()) << www.refusal;
  EXPECT_EQ(www.socket_unit, "idlepool-php8.2-fpm@www.socket");
  const File* socket = file(www, "@www.socket");
  ASSERT_NE(socket, nullptr);
  // The socket binds a hidden twin and takes the original path over by link and rename (no moment without it).
  EXPECT_NE(socket->text.find("ListenStream=/run/php/.php8.2-fpm.sock.idlepool\n"), std::string::npos);
  EXPECT_NE(socket->text.find("mv -fT /run/php/.php8.2-fpm.sock.idlepool.link /run/php/php8.2-fpm.sock'"),
            std::string::npos);
  EXPECT_NE(socket->text.find("SocketUser=www-data\nSocketGroup=www-data\nSocketMode=0660\n"), std::string::npos);
  const File* service = file(www, "@www.service");
  ASSERT_NE(service, nullptr);
  EXPECT_NE(service->text.find("Environment=FPM_SOCKETS=/run/php/php8.2-fpm.sock.inherited=3\n"), std::string::npos);
  EXPECT_NE(service->text.find("KillSignal=SIGQUIT\n"), std::string::npos);
  EXPECT_NE(service->text.find("ExecStart=/usr/sbin/php-fpm8.2 --nodaemonize --fpm-config "
                               "/etc/php/8.2/fpm/idlepool/www.conf\n"),
            std::string::npos);
  const File* conf = file(www, "/fpm/idlepool/www.conf");
  ASSERT_NE(conf, nullptr);
  // The master's globals that matter, never its pid file or includes; php-fpm's 0 made a real timeout.
  EXPECT_NE(conf->text.find("error_log = /var/log/php8.2-fpm.log\n"), std::string::npos);
  EXPECT_EQ(conf->text.find("pid ="), std::string::npos);
  EXPECT_EQ(conf->text.find("include"), std::string::npos);
  EXPECT_NE(conf->text.find("process_control_timeout = 10s\n"), std::string::npos);
  EXPECT_NE(conf->text.find("\nlisten = /run/php/php8.2-fpm.sock.inherited\n"), std::string::npos);
  for (const char* kept :
       {"user = www-data\n", "listen.owner = www-data\n", "pm = dynamic\n", "pm.max_spare_servers = 3\n"})
    EXPECT_NE(conf->text.find(kept), std::string::npos) << kept;
  EXPECT_FALSE(www.notes.empty());
  // site-tcp was not selected: the shared master keeps it, so no placeholder.
  ASSERT_EQ(plan.versions.size(), 1u);
  EXPECT_EQ(plan.versions[0].remaining, std::vector<std::string>{"site-tcp"});
  EXPECT_FALSE(plan.versions[0].needs_placeholder);
}

TEST(AdoptPlan, TcpPoolKeepsItsAddressAndQuotedValues) {
  std::string main = "[global]\nprocess_control_timeout = 20s\ninclude=/etc/php/8.2/fpm/pool.d/*.conf\n";
  Plan plan = make_plan({install({{"site-tcp.conf", kTcp}}, main)}, {}, {});
  const PoolPlan& tcp = pool(plan, "site-tcp");
  ASSERT_TRUE(tcp.ok()) << tcp.refusal;
  EXPECT_NE(file(tcp, "@site-tcp.socket")->text.find("ListenStream=127.0.0.1:9301\nReusePort=yes\n"),
            std::string::npos);
  EXPECT_EQ(file(tcp, "@site-tcp.socket")->text.find("ExecStartPost"), std::string::npos);
  EXPECT_NE(file(tcp, "@site-tcp.service")->text.find("FPM_SOCKETS=127.0.0.1:9301=3\n"), std::string::npos);
  EXPECT_NE(file(tcp, "@site-tcp.service")->text.find("TimeoutStopSec=25s\n"), std::string::npos);
  const std::string& conf = file(tcp, "site-tcp.conf")->text;
  EXPECT_NE(conf.find("process_control_timeout = 20s\n"), std::string::npos);
  EXPECT_NE(conf.find("\nlisten = 127.0.0.1:9301\n"), std::string::npos);
  EXPECT_NE(conf.find("php_admin_value[memory_limit] = \"96M\"\n"), std::string::npos);
  EXPECT_TRUE(tcp.notes.empty());
  // Every pool leaves: the master keeps a placeholder pool, and its drop-in syncs before start and reload.
  ASSERT_EQ(plan.versions.size(), 1u);
  const VersionPlan& v = plan.versions[0];
  EXPECT_TRUE(v.needs_placeholder);
  ASSERT_EQ(v.files.size(), 2u);
  EXPECT_EQ(v.files[0].path, "/etc/systemd/system/php8.2-fpm.service.d/idlepool-adopt.conf");
  EXPECT_NE(v.files[0].text.find("ExecReload=\nExecReload=-/usr/bin/idlepoolctl adopt --sync 8.2\n"
                                 "ExecReload=/bin/kill -USR2 $MAINPID\n"),
            std::string::npos);
  EXPECT_NE(v.files[0].text.find("ExecStartPre=-/usr/bin/idlepoolctl adopt --sync 8.2\n"), std::string::npos);
  EXPECT_EQ(v.files[1].path, placeholder_path("8.2"));
}

TEST(AdoptPlan, RefusesWhatItCannotMoveSafelyAndSaysWhy) {
  auto main_pool = install({}, "[global]\n[inline]\nlisten = /run/php/inline.sock\n");
  auto plan = make_plan({main_pool}, {}, {});
  EXPECT_NE(pool(plan, "inline").refusal.find("php-fpm.conf itself"), std::string::npos);

  std::map<std::string, std::string> files = {
      {"chroot.conf", "[jail]\nlisten = /run/php/jail.sock\nchroot = /srv/jail\n"},
      {"two.conf", "[a]\nlisten = /run/php/a.sock\n[b]\nlisten = /run/php/b.sock\n"},
      {"nolisten.conf", "[quiet]\nuser = www-data\n"},
      {"v6.conf", "[six]\nlisten = [::]:9000\n"},
      {"acl.conf", "[acl]\nlisten = /run/php/acl.sock\nlisten.acl_users = www-data\n"},
      {"bad name.conf", "[bad name]\nlisten = /run/php/bad.sock\n"},
      {"status.conf", "[status]\nlisten = /run/php/status.sock\npm.status_listen = /run/php/status-only.sock\n"},
  };
  plan = make_plan({install(files)}, {}, {});
  EXPECT_NE(pool(plan, "jail").refusal.find("chroot"), std::string::npos);
  EXPECT_NE(pool(plan, "a").refusal.find("also defines pool b"), std::string::npos);
  EXPECT_NE(pool(plan, "quiet").refusal.find("no listen"), std::string::npos);
  EXPECT_NE(pool(plan, "six").refusal.find("IPv6"), std::string::npos);
  EXPECT_NE(pool(plan, "acl").refusal.find("setfacl"), std::string::npos);
  EXPECT_NE(pool(plan, "bad name").refusal.find("instance name"), std::string::npos);
  EXPECT_NE(pool(plan, "status").refusal.find("second socket"), std::string::npos);
  EXPECT_EQ(plan.adoptable(), 0u);
  EXPECT_TRUE(plan.versions.empty());  // nothing moves: the master is not touched at all
  std::string text = render_plan(plan, false);
  EXPECT_NE(text.find("8.2/jail: refused: chroot"), std::string::npos);
  EXPECT_NE(text.find("Nothing to adopt."), std::string::npos);
}

TEST(AdoptPlan, AclsNeedSetfaclAndReplaceOwnerAndGroup) {
  Environment env;
  env.have_setfacl = true;
  auto plan = make_plan({install({{"acl.conf",
                                   "[acl]\nlisten = /run/php/acl.sock\nlisten.owner = nobody\n"
                                   "listen.acl_users = www-data, backup\nlisten.acl_groups = adm\n"}})},
                        {}, env);
  const PoolPlan& acl = pool(plan, "acl");
  ASSERT_TRUE(acl.ok()) << acl.refusal;
  const std::string& socket = file(acl, "@acl.socket")->text;
  EXPECT_NE(socket.find("ExecStartPost=/usr/bin/setfacl -m u:www-data:rw,u:backup:rw,g:adm:rw "
                        "/run/php/.acl.sock.idlepool\n"),
            std::string::npos);
  EXPECT_EQ(socket.find("SocketUser"), std::string::npos);  // php-fpm ignores listen.owner when ACLs are set
  // The ACL is set before the link makes the socket reachable under its path.
  EXPECT_LT(socket.find("setfacl"), socket.find("ln -f"));
}

TEST(AdoptPlan, ASocketOwnerThatDoesNotExistIsRefused) {
  Environment env;
  env.user_exists = [](const std::string& u) { return u != "ghost"; };
  env.group_exists = [](const std::string& g) { return g != "phantoms"; };
  auto plan = make_plan({install({{"a.conf", "[a]\nlisten = /run/php/a.sock\nlisten.owner = ghost\n"},
                                  {"b.conf", "[b]\nlisten = /run/php/b.sock\nlisten.group = phantoms\n"},
                                  {"c.conf", "[c]\nlisten = /run/php/c.sock\nlisten.owner = www-data\n"}})},
                        {}, env);
  EXPECT_EQ(pool(plan, "a").refusal, "listen.owner = ghost: no such user");
  EXPECT_EQ(pool(plan, "b").refusal, "listen.group = phantoms: no such group");
  EXPECT_TRUE(pool(plan, "c").ok());
}

// An adopted pool keeps its compiled scripts across stops in a directory of its own user's; a pool that sets its own
// file cache, turns opcache off or has no user that may own one is left as it is, with a note saying why.
TEST(AdoptPlan, EachPoolGetsAnOpcacheFileCacheOfItsOwnUser) {
  Environment env;
  env.user_exists = [](const std::string& u) { return u != "ghost"; };
  auto plan = make_plan(
      {install({{"www.conf", kWww},
                {"own.conf",
                 "[own]\nuser = own\nlisten = /run/php/own.sock\nphp_admin_value[opcache.file_cache] = /srv/oc\n"},
                {"off.conf", "[off]\nuser = off\nlisten = /run/php/off.sock\nphp_admin_flag[opcache.enable] = Off\n"},
                {"on.conf", "[on]\nuser = on\nlisten = /run/php/on.sock\nphp_admin_flag[opcache.enable] = on\n"},
                {"ghost.conf", "[ghost]\nuser = ghost\nlisten = /run/php/ghost.sock\n"},
                {"root.conf", "[root]\nuser = root\nlisten = /run/php/root.sock\n"},
                {"odd.conf", "[odd]\nuser = \"a b\"\nlisten = /run/php/odd.sock\n"}})},
      {}, env);
  const PoolPlan& www = pool(plan, "www");
  ASSERT_TRUE(www.ok()) << www.refusal;
  EXPECT_EQ(www.opcache_dir, "/var/cache/idlepool/opcache/8.2/www");
  EXPECT_EQ(www.opcache_tmpfiles, "/etc/tmpfiles.d/idlepool-php8.2-fpm@www.conf");
  const File* tmpfiles = file(www, "tmpfiles.d/idlepool-php8.2-fpm@www.conf");
  ASSERT_NE(tmpfiles, nullptr);
  EXPECT_NE(tmpfiles->text.find("\nd /var/cache/idlepool/opcache/8.2/www 0700 www-data - -\n"), std::string::npos)
      << tmpfiles->text;
  const File* conf = file(www, "fpm/idlepool/www.conf");
  ASSERT_NE(conf, nullptr);
  EXPECT_NE(conf->text.find("\nphp_admin_value[opcache.file_cache] = /var/cache/idlepool/opcache/8.2/www\n"),
            std::string::npos);
  EXPECT_EQ(file(www, "@www.service")->text.find("ExecStartPre"), std::string::npos);  // nothing on a wake's path
  EXPECT_NE(render_plan(plan, false).find("/var/cache/idlepool/opcache/8.2/www (opcache file cache, www-data's"),
            std::string::npos);
  EXPECT_NE(pool(plan, "on").opcache_dir, "");

  auto none = [&](const std::string& name, const std::string& note) {
    const PoolPlan& p = pool(plan, name);
    ASSERT_TRUE(p.ok()) << p.refusal;
    EXPECT_EQ(p.opcache_dir, "") << name;
    EXPECT_EQ(file(p, "@" + name + ".conf"), nullptr) << name;  // no tmpfiles.d file
    EXPECT_EQ(file(p, "fpm/idlepool/" + name + ".conf")->text.find("file_cache] = /var/cache"), std::string::npos);
    bool noted = note.empty();
    for (const auto& n : p.notes) noted = noted || n.find(note) != std::string::npos;
    EXPECT_TRUE(noted) << name << ": no note with '" << note << "'";
  };
  none("own", "it keeps its own opcache.file_cache (/srv/oc)");
  none("off", "");
  none("ghost", "no opcache file cache: its user (ghost) is not a plain name of an existing user other than root");
  none("root", "its user (root)");
  none("odd", "no opcache file cache");
}

TEST(AdoptPlan, IsIdempotentAndShowsWhatIsAdopted) {
  Environment env;
  env.adopted = {"8.2/www"};
  // www's file is gone from pool.d (adopted); a second plan changes nothing for it.
  auto plan = make_plan({install({{"site-tcp.conf", kTcp}})}, {"www"}, env);
  ASSERT_EQ(plan.pools.size(), 1u);
  EXPECT_TRUE(plan.pools[0].already_adopted);
  EXPECT_EQ(plan.adoptable(), 0u);
  EXPECT_NE(render_plan(plan, false).find("8.2/www: adopted (idlepool-php8.2-fpm@www.socket)"), std::string::npos);
  // A panel wrote an adopted pool's file again: refused, and --sync named as the way out.
  plan = make_plan({install({{"www.conf", kWww}})}, {"www"}, env);
  EXPECT_NE(pool(plan, "www").refusal.find("--sync 8.2"), std::string::npos);
}

TEST(AdoptPlan, SelectionByVersionAndName) {
  auto plan = make_plan({install({{"www.conf", kWww}, {"site-tcp.conf", kTcp}})}, {"8.2/site-tcp"}, {});
  ASSERT_EQ(plan.pools.size(), 1u);
  EXPECT_EQ(plan.pools[0].name, "site-tcp");
  EXPECT_TRUE(make_plan({install({{"www.conf", kWww}})}, {"7.4/www"}, {}).pools.empty());
}

TEST(AdoptManifest, RoundTripsThroughThePlan) {
  auto plan = make_plan({install({{"www.conf", kWww}})}, {}, {});
  const File* manifest = file(pool(plan, "www"), "/manifest");
  ASSERT_NE(manifest, nullptr);
  EXPECT_EQ(manifest->mode, 0600);
  auto m = parse_manifest(manifest->text);
  ASSERT_TRUE(m.ok()) << m.error().message;
  EXPECT_EQ(m->source, "/etc/php/8.2/fpm/pool.d/www.conf");
  EXPECT_EQ(m->listen, "/run/php/php8.2-fpm.sock");
  // The pool's configuration, its two units and its opcache directory's tmpfiles.d file; the manifest is in the backup.
  EXPECT_EQ(m->files.size(), 4u);
  EXPECT_EQ(m->files.back(), "/etc/tmpfiles.d/idlepool-php8.2-fpm@www.conf");
  EXPECT_FALSE(parse_manifest("version = 8.2\n").ok());
  EXPECT_FALSE(parse_manifest("what = ever\n").ok());
}

TEST(AdoptProcNetUnix, CountsListenersAndConnectionsOfAName) {
  const char* text =
      "Num       RefCount Protocol Flags    Type St Inode Path\n"
      "0000000000000000: 00000002 00000000 00010000 0001 01 1001 /run/php/site.sock\n"
      "0000000000000000: 00000003 00000000 00000000 0001 03 1002 /run/php/site.sock\n"
      "0000000000000000: 00000003 00000000 00000000 0001 03 1003 /run/php/site.sock\n"
      "0000000000000000: 00000003 00000000 00000000 0001 03 1004 /run/php/other.sock\n"
      "0000000000000000: 00000003 00000000 00000000 0001 03 1005\n"
      "garbage\n";
  EXPECT_EQ(unix_sockets_named(text, "/run/php/site.sock").connections, 2u);
  EXPECT_EQ(unix_sockets_named(text, "/run/php/site.sock").listeners, 1u);
  EXPECT_EQ(unix_sockets_named(text, "/run/php/none.sock").connections, 0u);
  EXPECT_EQ(unix_sockets_named(text, "/run/php/none.sock").listeners, 0u);
}

}  // namespace
}  // namespace idlepool::adopt
