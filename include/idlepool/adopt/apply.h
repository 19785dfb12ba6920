// Carrying out an adoption plan (adopt/plan.h) on the running system, and undoing it, without failed requests where
// the kernel allows it:
//
// Unix pools, apply: the socket unit binds a hidden name beside the pool's path and takes the path over with a link
// and a rename, so the path always answers (the shared master's socket, then idlepool's). The shared master's old
// socket gets no new connection after that; its in-flight requests finish (watched in /proc/net/unix) before the
// master reloads without the pool, and the path is bind-mounted on itself during that reload, because php-fpm
// unlinks the path of an inherited socket it no longer uses.
// TCP pools, apply: the master must let go of the port before systemd can bind it. The port is polled every
// millisecond after the reload and the socket started at once; the time the port was closed is measured and printed.
// Undo: php-fpm refuses to bind a unix path that answers, so the path is closed just before the master reloads with
// the pool again; that window (and TCP's) is measured and printed. idlepool's master drains before it stops.
//
// Everything is logged to `log` as it happens; an error stops there and says what was done and what was not.
#pragma once

#include <ostream>
#include <string>
#include <vector>

#include "idlepool/adopt/plan.h"
#include "idlepool/result.h"

namespace idlepool::adopt {

// Every installed php-fpm (/etc/php/*/fpm/php-fpm.conf) with its includes, read as php-fpm reads it.
Result<std::vector<Installation>> read_installations(const std::string& etc_php = "/etc/php");

// The environment: adopted pools (manifests in state_dir), setfacl, the time.
Environment read_environment();

Result<void> apply_plan(const Plan& plan, std::ostream& log);

// Undoes the adopted pools `selection` names (VERSION/NAME or NAME; empty: all).
Result<void> undo(const std::vector<std::string>& selection, const Environment& env, std::ostream& log);

// Run by the shared master before it starts or reloads: adopted pools' files that came back into its pool.d are
// taken out again (a rewritten one becomes the adopted pool's new configuration, when its listen is unchanged), and
// any pool on an address an adopted pool holds is set aside, so the master never fails binding it.
Result<void> sync(const std::string& version, const Environment& env, std::ostream& log);

}  // namespace idlepool::adopt
