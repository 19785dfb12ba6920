#!/usr/bin/env bash
# A real PHP application's wake, natively on this machine (the guest's `app` part runs under emulation): Debian's
# phpMyAdmin (its login page) behind nginx, served by a php-fpm master of its own that is started and stopped as
# systemd would on a wake (the master starts, the first request is sent at once). In alternating rounds: the master's
# start and the first request, with the pool's opcache file cache, without, and with it but without its checksums;
# the master's start alone; a warm request. Medians with the spread, in milliseconds.
# Usage (root): bench/app-wake-native.sh [ROUNDS]   (default 9; installs phpmyadmin, nginx and php8.2-fpm if missing)
set -euo pipefail
rounds=${1:-9}
for pkg in phpmyadmin nginx php8.2-fpm curl; do
  dpkg -s "$pkg" >/dev/null 2>&1 ||
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$pkg" >/dev/null
done
work=$(mktemp -d /tmp/idlepool-app-wake.XXXXXX)
chmod 0755 "$work"  # nginx's and php-fpm's workers (www-data) reach the socket and the cache through it
trap '[[ -f $work/fpm.pid ]] && kill -QUIT "$(cat "$work/fpm.pid")" 2>/dev/null; [[ -f $work/nginx.pid ]] && kill "$(cat "$work/nginx.pid")" 2>/dev/null; sleep 0.5; rm -rf "$work"' EXIT
install -d -m 0700 -o www-data "$work/opcache"
conf() {  # FILE_CACHE: yes, no, or unchecked (yes, without its checksums: opcache.file_cache_consistency_checks = 0)
  {
    printf '[global]\npid = %s/fpm.pid\nerror_log = %s/fpm.log\n[app]\n' "$work" "$work"
    printf 'user = www-data\ngroup = www-data\nlisten = %s/app.sock\nlisten.owner = www-data\n' "$work"
    printf 'pm = ondemand\npm.max_children = 2\n'
    if [[ $1 != no ]]; then echo "php_admin_value[opcache.file_cache] = $work/opcache"; fi
    if [[ $1 == unchecked ]]; then echo "php_admin_value[opcache.file_cache_consistency_checks] = 0"; fi
  } >"$work/fpm.conf"
}
cat >"$work/nginx.conf" <<NGINX
user www-data; pid $work/nginx.pid; error_log $work/nginx-error.log;
events {}
http { access_log off;
  server { listen 127.0.0.1:18080;
    location = /app/ { fastcgi_pass unix:$work/app.sock; include /etc/nginx/fastcgi_params;
      fastcgi_param SCRIPT_FILENAME /usr/share/phpmyadmin/index.php; }
  }
}
NGINX
nginx -c "$work/nginx.conf"
ms() { echo $(($(date +%s%N) / 1000000)); }
page() { [[ $(curl -s -m 60 http://127.0.0.1:18080/app/) == *"<title>phpMyAdmin"* ]] || { echo "no login page" >&2; exit 1; }; }
stop() { kill -QUIT "$(cat "$work/fpm.pid")"; while [[ -e $work/fpm.pid ]]; do sleep 0.05; done; }
median() { sort -n | awk '{a[NR] = $1} END {m = NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2; printf "%s (%s-%s)", m, a[1], a[NR]}'; }
conf yes
php-fpm8.2 -y "$work/fpm.conf" && page && stop  # fills the file cache once
for ((r = 0; r < rounds; r++)); do
  for fc in yes unchecked no; do
    conf "$fc"
    t=$(ms)
    php-fpm8.2 -y "$work/fpm.conf"
    page
    echo $(($(ms) - t)) >>"$work/first-$fc"
    stop
  done
  t=$(ms)
  php-fpm8.2 -y "$work/fpm.conf"
  echo $(($(ms) - t)) >>"$work/start"
  page
  for i in 1 2 3; do
    t=$(($(date +%s%N) / 1000))
    page
    echo $((($(date +%s%N) / 1000 - t) / 1000)) >>"$work/warm"
  done
  stop
done
echo "phpMyAdmin login page, $(find "$work/opcache" -name '*.php.bin' | wc -l) compiled scripts, $rounds rounds, ms median (spread):"
echo "  warm request                          $(median <"$work/warm")"
echo "  master start alone                    $(median <"$work/start")"
echo "  start + first request, file cache     $(median <"$work/first-yes")"
echo "  start + first request, no file cache  $(median <"$work/first-no")"
echo "  the same, file cache, no checksums     $(median <"$work/first-unchecked")"
