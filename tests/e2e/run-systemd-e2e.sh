#!/usr/bin/env bash
# End-to-end tests against a real systemd: boots a QEMU guest with Debian 12's kernel and systemd as PID 1 on this
# host's root (tests/e2e/systemd-guest-lib.sh), where idlepoold runs as the service this project ships (dist/systemd,
# its hardening included) over real php-fpm pools behind socket units:
#   php-fpm@alias  unix socket, the stop-safe template (listens on the alias name)
#   php-fpm@naive  unix socket, php-fpm listening on the socket unit's own path (must be refused)
#   php-fpm-seed   TCP 127.0.0.1:8888 as in the original write-up, named explicitly in the configuration
# The guest runs tests/e2e/guest/scenarios.sh, which prints one IDLEPOOL-E2E line per check; this runner fails on a
# failed check, a guest that never boots, or a hang.
#
# Usage: tests/e2e/run-systemd-e2e.sh BUILD_DIR
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
build=$(cd "${1:?usage: $0 BUILD_DIR}" && pwd)
timeout_s=${IDLEPOOL_E2E_TIMEOUT:-900}
# shellcheck source=systemd-guest-lib.sh
. "$here/systemd-guest-lib.sh"

work=$(mktemp -d /tmp/idlepool-e2e.XXXXXX)
[[ -n ${IDLEPOOL_KEEP_GUEST_LOGS:-} ]] && echo "guest log kept in $work" || trap 'rm -rf "$work"' EXIT
tree=$work/tree
units=$tree/etc/systemd/system
mkdir -p "$units" "$tree/etc/idlepool" "$tree/etc/php/8.2/fpm/idlepool" "$tree/srv/idlepool" \
  "$tree/usr/local/lib/idlepool-e2e"

# What this project ships, as shipped (only the binary's path differs: the build tree, visible in the guest).
cp "$top/dist/systemd/php-fpm@.socket" "$top/dist/systemd/php-fpm@.service" "$units/"
sed "s|@SBINDIR@|$build/src|" "$top/dist/systemd/idlepoold.service" >"$units/idlepoold.service"
# The original write-up's pool: TCP 127.0.0.1:8888 (no unlink hazard for TCP).
cat >"$units/php-fpm-seed.socket" <<'UNIT'
[Socket]
ListenStream=127.0.0.1:8888
UNIT
cat >"$units/php-fpm-seed.service" <<'UNIT'
[Unit]
Requires=php-fpm-seed.socket
After=php-fpm-seed.socket
[Service]
Type=notify
ExecStart=/usr/sbin/php-fpm8.2 --nodaemonize --fpm-config /etc/php/8.2/fpm/idlepool/seed.conf
Environment=FPM_SOCKETS=127.0.0.1:8888=3
KillSignal=SIGQUIT
UNIT
# The naive pool: php-fpm listens on the socket unit's own path (FPM_SOCKETS names that path), as most guides do.
mkdir -p "$units/php-fpm@naive.service.d"
cat >"$units/php-fpm@naive.service.d/naive.conf" <<'UNIT'
[Service]
Environment=FPM_SOCKETS=/run/php/naive.sock=3
UNIT
# A service that removes its socket unit's path when it stops (as php-fpm does with a naive listen): idlepool
# cannot see that coming, so it must notice after the stop, restore the socket and never stop it again.
cat >"$units/vanish.socket" <<'UNIT'
[Socket]
ListenStream=/run/idlepool-vanish.sock
UNIT
cat >"$units/vanish.service" <<'UNIT'
[Unit]
Requires=vanish.socket
After=vanish.socket
[Service]
ExecStart=/usr/bin/python3 -c 'import socket; s = socket.socket(fileno=3)\nwhile True: s.accept()[0].close()'
ExecStopPost=/bin/rm -f /run/idlepool-vanish.sock
UNIT
pool_conf() {  # NAME LISTEN
  cat >"$tree/etc/php/8.2/fpm/idlepool/$1.conf" <<CONF
[global]
error_log = syslog
syslog.ident = php-fpm-$1
process_control_timeout = 20s
[$1]
user = www-data
group = www-data
listen = $2
pm = ondemand
pm.max_children = 4
pm.process_idle_timeout = 3s
CONF
}
pool_conf alias /run/php/alias.sock.inherited
pool_conf churn1 /run/php/churn1.sock.inherited
pool_conf churn2 /run/php/churn2.sock.inherited
pool_conf naive /run/php/naive.sock
pool_conf seed 127.0.0.1:8888
cat >"$tree/etc/idlepool/idlepool.conf" <<'CONF'
idle-timeout = 6s
min-uptime = 2s
unit-pattern = php*-fpm@*.service
unit = php-fpm-seed.service
unit = vanish.service
max-stops-per-second = 5
log-level = debug

[pool php-fpm@churn1.service]
idle-timeout = 3s
[pool php-fpm@churn2.service]
idle-timeout = 3s
CONF
# nginx in front, as in the original setup: fastcgi_pass to each pool; /keep/ keeps its FastCGI connection open.
mkdir -p "$tree/etc/idlepool-e2e"
{
  echo "worker_processes 1; pid /run/nginx-e2e.pid; error_log /run/nginx-e2e-error.log;"
  echo "events {}"
  echo "http { access_log off;"
  echo "  upstream alias_keep { server unix:/run/php/alias.sock; keepalive 2; }"
  echo "  server { listen 127.0.0.1:80;"
  for loc in seed:127.0.0.1:8888 alias:unix:/run/php/alias.sock churn1:unix:/run/php/churn1.sock \
    churn2:unix:/run/php/churn2.sock keep:alias_keep; do
    name=${loc%%:*} pass=${loc#*:}
    extra=""
    [[ $name == keep ]] && extra="fastcgi_keep_conn on;"
    echo "    location ~ ^/$name/(.+\.php)\$ { fastcgi_pass $pass; $extra include /etc/nginx/fastcgi_params;"
    echo "      fastcgi_param SCRIPT_FILENAME /srv/idlepool/\$1; fastcgi_read_timeout 120s; }"
  done
  echo "  }"
  echo "}"
} >"$tree/etc/idlepool-e2e/nginx.conf"
cat >"$units/nginx-e2e.service" <<'UNIT'
[Service]
ExecStart=/usr/sbin/nginx -c /etc/idlepool-e2e/nginx.conf -g 'daemon off;'
UNIT
cat >"$tree/srv/idlepool/hello.php" <<'PHP'
<?php echo "hello from ", getenv("FPM_SOCKETS") ?: "?", "\n";
PHP
cat >"$tree/srv/idlepool/slow.php" <<'PHP'
<?php $s = (int)($_GET["s"] ?? 10); sleep($s); echo "slept $s\n";
PHP
cp "$here/guest/scenarios.sh" "$here/guest/acceptance.sh" "$here/guest/check_status.py" "$here/guest/control_garbage.py" \
  "$tree/usr/local/lib/idlepool-e2e/"
chmod +x "$tree/usr/local/lib/idlepool-e2e/"*

systemd_guest_tree "$tree" "env IDLEPOOLCTL=$build/src/idlepoolctl /usr/local/lib/idlepool-e2e/scenarios.sh"
start=$SECONDS
systemd_guest_boot "$tree" "$work/serial.log" "$timeout_s" "$top" "$build"
took=$((SECONDS - start))
grep -a -E "IDLEPOOL-(E2E|GUEST|RESULT)|^  " "$work/serial.log" | tr -d '\r' || true
if grep -q "IDLEPOOL-RESULT: rc=0" "$work/serial.log"; then
  echo "systemd end-to-end: PASS in ${took}s"
  exit 0
fi
if ! grep -q "IDLEPOOL-GUEST: driver started" "$work/serial.log"; then
  echo "systemd end-to-end: FAIL: the guest never reached its driver (${took}s); serial log tail:"
elif ! grep -q "IDLEPOOL-RESULT" "$work/serial.log"; then
  echo "systemd end-to-end: FAIL: no result within ${timeout_s}s (hang); serial log tail:"
else
  echo "systemd end-to-end: FAIL (${took}s); serial log tail:"
fi
tail -n 60 "$work/serial.log" | tr -d '\r'
exit 1
