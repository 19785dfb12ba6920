#!/usr/bin/env bash
# The path of a real server, end to end in a systemd guest (systemd-guest-lib.sh): Debian's own php8.2-fpm package as
# shipped (its unit, php-fpm.conf and stock www pool) plus two site pools in pool.d (TCP 127.0.0.1:9301; unix
# /run/php/site-unix.sock, www-data:www-data 0660), nginx in front with an ordinary site. In the guest
# (tests/e2e/adopt/guest.sh): install the previous package and upgrade to this one, plan, apply under a client that
# never stops, idle stops and wakes, the monitoring mixin's every query through a real Prometheus scraping idlepoold,
# a panel writing pool.d, package removal, undo under the client, purge.
# The "previous build" is this package repacked with a lower version: the upgrade path of the maintainer scripts.
#
# Usage: tests/e2e/run-adopt-e2e.sh DEB   (scripts/build-deb.sh builds it)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
deb=$(readlink -f "${1:?usage: $0 DEB}")
# A hang guard, not a speed check: alone a run takes ~6 min here, beside another emulated guest up to ~15.
timeout_s=${IDLEPOOL_E2E_TIMEOUT:-1500}
# shellcheck source=systemd-guest-lib.sh
. "$here/systemd-guest-lib.sh"

work=$(mktemp -d /tmp/idlepool-adopt-e2e.XXXXXX)
[[ -n ${IDLEPOOL_KEEP_GUEST_LOGS:-} ]] && echo "guest log kept in $work" || trap 'rm -rf "$work"' EXIT
tree=$work/tree
lib=$tree/usr/local/lib/idlepool-adopt
mkdir -p "$lib" "$tree/etc/php/8.2/fpm/pool.d" "$tree/etc/nginx/conf.d" "$tree/srv/adopt"
cp "$here/adopt/guest.sh" "$here/adopt/client.py" "$here/adopt/query_mixin.py" "$lib/"
cp -r "$top/dist/monitoring" "$lib/monitoring"
cp "$deb" "$lib/idlepool_new.deb"
# The previous build: the same package, an older version.
dpkg-deb -R "$deb" "$work/old"
sed -i -E 's/^Version: .*/Version: 0.1.99/' "$work/old/DEBIAN/control"
dpkg-deb --root-owner-group -b "$work/old" "$lib/idlepool_old.deb" >/dev/null

cat >"$tree/etc/php/8.2/fpm/pool.d/site-tcp.conf" <<'POOL'
; written by a hosting panel
[site-tcp]
user = www-data
group = www-data
listen = 127.0.0.1:9301
pm = dynamic
pm.max_children = 4
pm.start_servers = 1
pm.min_spare_servers = 1
pm.max_spare_servers = 2
php_admin_value[memory_limit] = 64M
POOL
cat >"$tree/etc/php/8.2/fpm/pool.d/site-unix.conf" <<'POOL'
; written by a hosting panel
[site-unix]
user = www-data
group = www-data
listen = /run/php/site-unix.sock
listen.owner = www-data
listen.group = www-data
listen.mode = 0660
pm = ondemand
pm.max_children = 4
pm.process_idle_timeout = 10s
POOL
# An ordinary nginx site (the guest removes Debian's default one).
{
  echo "server {"
  echo "  listen 127.0.0.1:80 default_server;"
  for route in "www unix:/run/php/php8.2-fpm.sock" "tcp 127.0.0.1:9301" "unix unix:/run/php/site-unix.sock" \
    "new unix:/run/php/site-new.sock"; do
    set -- $route
    echo "  location = /$1/ { include fastcgi_params; fastcgi_param SCRIPT_FILENAME /srv/adopt/index.php; fastcgi_pass $2; }"
  done
  echo "}"
} >"$tree/etc/nginx/conf.d/adopt.conf"
echo '<?php echo "ok\n";' >"$tree/srv/adopt/index.php"

systemd_guest_tree "$tree" "/bin/bash /usr/local/lib/idlepool-adopt/guest.sh"
start=$SECONDS
systemd_guest_boot "$tree" "$work/serial.log" "$timeout_s" "$top"
took=$((SECONDS - start))
grep -a -E "IDLEPOOL-(E2E|GUEST|RESULT)|^  " "$work/serial.log" | tr -d '\r' || true
if grep -q "IDLEPOOL-RESULT: rc=0" "$work/serial.log"; then
  echo "adoption end-to-end: PASS in ${took}s"
  exit 0
fi
echo "adoption end-to-end: FAIL (${took}s); serial log tail:"
tail -n 60 "$work/serial.log" | tr -d '\r'
exit 1
