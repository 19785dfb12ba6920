// `idlepoolctl adopt`: moving a distribution's php-fpm pools (Debian's phpX.Y-fpm: one master, a pool.d that hosting
// panels write) each to a master of its own behind a systemd socket unit on the pool's ORIGINAL address, so that
// idlepoold can stop it when idle and the web server's configuration is not touched.
//
// This part is pure: from the parsed configuration of every installed version (wire::FpmConfig) and what is already
// adopted, it decides per pool what would be written, or why the pool is refused, and renders the files. Applying
// (files, systemctl, the switch of the socket without failed requests) is adopt/apply.h.
//
// Per adopted pool NAME of version V (all of it self-contained: it keeps working when the package is removed):
//   /etc/systemd/system/idlepool-phpV-fpm@NAME.socket   the pool's listen, its owner, group, mode, backlog and ACLs
//   /etc/systemd/system/idlepool-phpV-fpm@NAME.service  php-fpmV on an alias of that socket (stop-safe), SIGQUIT
//   /etc/php/V/fpm/idlepool/NAME.conf                   the master's globals that matter + every directive of the
//                                                       pool, with the alias listen
//   /var/lib/idlepool/adopted/V/NAME/                   the original pool file byte for byte, and a manifest
//   /etc/tmpfiles.d/idlepool-phpV-fpm@NAME.conf         its opcache file cache /var/cache/idlepool/opcache/V/NAME,
//                                                       the pool's user's alone (0700): a wake loads the compiled
//                                                       scripts instead of compiling the site again
// and once per version a drop-in on phpV-fpm.service that runs `idlepoolctl adopt --sync V` before the master starts
// or reloads, so that a panel rewriting an adopted pool's file, or writing a pool on an address a socket unit holds,
// never makes the shared master fail.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "idlepool/result.h"
#include "idlepool/wire/php_fpm_config.h"

namespace idlepool::adopt {

// One installed php-fpm: its version ("8.2"), its main configuration as read (with includes).
struct Installation {
  std::string version;
  std::string conf_path;  // /etc/php/8.2/fpm/php-fpm.conf
  wire::FpmConfig config;
};

// A pool's `listen`, as systemd and php-fpm must both understand it.
struct Listen {
  bool unix_socket = false;
  std::string path;             // unix: the socket's path
  std::string host = "";        // tcp: dotted quad (0.0.0.0 for a port alone, as php-fpm binds it)
  int port = 0;                 // tcp
  std::string systemd() const;  // ListenStream= value
  std::string fpm_key() const;  // the key php-fpm gives this address in FPM_SOCKETS
};
// php-fpm's listen value as fpm_sockets.c reads it. Errors say what cannot be reproduced.
Result<Listen> parse_listen(std::string_view value);

struct File {
  std::string path;
  std::string text;
  int mode = 0644;
};

// What adopting one pool means, or why it is refused.
struct PoolPlan {
  std::string version;
  std::string name;
  std::string source;  // the file that defines it (in pool.d)
  bool already_adopted = false;
  std::string refusal;  // empty: it can be adopted
  Listen listen;
  std::string socket_unit;  // idlepool-php8.2-fpm@NAME.socket
  std::string service_unit;
  std::string master_unit;         // php8.2-fpm.service
  std::string backup_dir;          // /var/lib/idlepool/adopted/8.2/NAME
  std::string opcache_dir;         // its opcache file cache, or empty (the pool sets its own, or cannot have one)
  std::string opcache_user;        // who owns it: the pool's user
  std::string opcache_tmpfiles;    // the tmpfiles.d file that makes it (one of `files`)
  std::vector<File> files;         // written on apply (units, the pool's configuration, the manifest)
  std::vector<std::string> notes;  // what the operator should know (a setting changed, a default made explicit)
  bool ok() const { return refusal.empty(); }
};

struct VersionPlan {
  std::string version;
  std::string master_unit;
  std::vector<std::string> remaining;  // pools the shared master keeps serving after the plan
  bool needs_placeholder = false;      // every pool leaves: the master keeps a pool that never runs a worker
  int process_control_timeout = 0;     // the master's (0: its reload cuts requests in flight of its other pools)
  std::vector<File> files;             // the drop-in on the master, the placeholder pool
};

struct Plan {
  std::vector<PoolPlan> pools;
  std::vector<VersionPlan> versions;
  size_t adoptable() const;
};

struct Environment {
  std::string systemd_dir = "/etc/systemd/system";
  std::string state_dir = "/var/lib/idlepool/adopted";
  std::string ctl_path = "/usr/bin/idlepoolctl";
  std::string opcache_root = "/var/cache/idlepool/opcache";  // per pool: VERSION/NAME below it
  std::string tmpfiles_dir = "/etc/tmpfiles.d";
  bool have_setfacl = false;  // /usr/bin/setfacl (package acl): needed to give a socket the pool's listen.acl_*
  std::string now;            // for the files' headers ("2026-12-01 10:00 UTC")
  // Pools already adopted, as VERSION/NAME (from the manifests in state_dir).
  std::vector<std::string> adopted;
  // Whether a user or group exists (the socket's owner, group and ACL entries must; systemd would refuse the
  // socket unit otherwise). Everything exists unless told otherwise.
  std::function<bool(const std::string&)> user_exists = [](const std::string&) { return true; };
  std::function<bool(const std::string&)> group_exists = [](const std::string&) { return true; };
};

// `selection`: VERSION/NAME or NAME (every version) entries; empty selects every pool.
Plan make_plan(const std::vector<Installation>& installations, const std::vector<std::string>& selection,
               const Environment& env);

// The plan as an operator reads it: per pool, what would be created and changed, or why not.
std::string render_plan(const Plan& plan, bool applying);

// A systemd unit instance name may hold these characters only; pool names with others are refused.
bool valid_instance_name(std::string_view name);

// An adopted pool's opcache file cache directory, and the tmpfiles.d file that makes it.
std::string opcache_dir(const Environment& env, const std::string& version, const std::string& name);
std::string opcache_tmpfiles_path(const Environment& env, const std::string& version, const std::string& name);

// The hidden name the socket unit binds before it takes over the pool's path atomically (same directory).
std::string staging_path(const std::string& path);

// The pool Debian's master keeps when every other pool of it is adopted (php-fpm will not start without one).
std::string placeholder_path(const std::string& version);

// What an adopted pool's manifest (BACKUP_DIR/manifest) records, to undo it and to keep the master off its address.
struct Manifest {
  std::string version, name, source, listen, socket_unit, service_unit;
  std::vector<std::string> files;  // written by the adoption, removed by its undo
};
Result<Manifest> parse_manifest(std::string_view text);

// /proc/net/unix, the sockets bound to `path`: listening ones, and the others (connections accepted from a listener
// of that name, or waiting in its backlog). Lines that do not parse are skipped.
struct UnixNamed {
  size_t listeners = 0;
  size_t connections = 0;
};
UnixNamed unix_sockets_named(std::string_view proc_net_unix, std::string_view path);

}  // namespace idlepool::adopt
