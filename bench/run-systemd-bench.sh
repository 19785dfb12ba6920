#!/usr/bin/env bash
# What idlepool costs and what it saves, measured on a real Debian server: the systemd guest of the end-to-end tests
# (tests/e2e/systemd-guest-lib.sh), with more pools. Runs bench/guest/systemd-bench.sh there and prints its figures.
#   memory    20 and 100 idle php-fpm pools (pm = ondemand): PSS/RSS from their cgroups without idlepoold, then
#             after its stops; the daemon's own PSS/RSS counted against the saving
#   scale     1000 socket-activated units: idlepoold's discovery time, RSS (and what holds it), CPU and wakeups in
#             an idle minute (and, over another minute under strace, which of its sources woke its loop), with the
#             pools stopped and with all of them running
#   reaction  a pool's deadline to its stop completed; a worker's exit to the decision
#   wake      first request to a stopped pool vs warm, through nginx, with and without idlepoold; systemd-socket-proxyd
#   app       a real PHP application (Debian's phpMyAdmin, its login page: ~280 scripts) behind nginx in pools idlepoold
#             stops: a warm request; the first request after idlepoold stopped the pool, without and with an opcache
#             file cache; the same first request with the pool stopped by hand and idlepoold not running
#   heap      idlepoold run by hand on the 1000 units: glibc's account of its heap at READY (in use, kept free), and
#             heaptrack's live bytes at READY by the idlepool function that allocated them
#   discovery idlepoold run by hand on the 1000 units: logging to a file vs to the journal
#   bus       reading units from systemd: one call at a time vs many in flight, GetAll vs Get (bench/bus_read_bench.cpp)
# Usage: bench/run-systemd-bench.sh BUILD_DIR [PART...]   (default: memory scale reaction wake)
# BENCH_ICOUNT=1 runs the guest on QEMU's instruction-count clock (-icount shift=0,sleep=off): guest time is executed
# instructions, so a busy host does not move the figures (both vCPUs then share one host thread, and what runs on
# the other vCPU is paid for in full). Slow: an app run of 15 rounds did not finish in 90 minutes (BENCH_TIMEOUT, in
# seconds, default 2400) on this 2-vCPU machine. BENCH_APP_ROUNDS (default 7) sets the app part's rounds.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)
build=$(cd "${1:?usage: $0 BUILD_DIR [PART...]}" && pwd)
shift
parts=${*:-memory scale reaction wake}
. "$top/tests/e2e/systemd-guest-lib.sh"
. "$top/tests/e2e/systemd-tree.sh"

work=$(mktemp -d /tmp/idlepool-bench.XXXXXX)
[[ -n ${IDLEPOOL_KEEP_GUEST_LOGS:-} ]] && echo "guest log kept in $work" || trap 'rm -rf "$work"' EXIT
tree=$work/tree
idlepool_e2e_tree "$tree" "$top" "$build" 30s
units=$tree/etc/systemd/system
pool() {  # NAME IDLE_PROCESS_TIMEOUT
  cat >"$tree/etc/php/8.2/fpm/idlepool/$1.conf" <<CONF
[global]
error_log = syslog
process_control_timeout = 20s
[$1]
user = www-data
group = www-data
listen = /run/php/$1.sock.inherited
pm = ondemand
pm.max_children = 2
pm.process_idle_timeout = 3s
CONF
}
for i in $(seq 100); do pool "mem$i"; done
for i in $(seq 6); do pool "react$i"; done
{
  echo "idle-timeout = 30s"
  echo "min-uptime = 2s"
  echo "unit-pattern = php*-fpm@*.service"
  echo "max-stops-per-second = 50"
  echo "stop-burst = 100"
  echo "log-level = debug"
  for i in $(seq 6); do printf '[pool php-fpm@react%d.service]\nidle-timeout = 5s\n' "$i"; done
  printf '[pool php-fpm@alias.service]\nidle-timeout = 6s\n'
} >"$tree/etc/idlepool/idlepool.conf"
# 1000 socket-activated units that need not run anything (scale).
cat >"$units/bench@.socket" <<'UNIT'
[Socket]
ListenStream=/run/bench/%i.sock
UNIT
cat >"$units/bench@.service" <<'UNIT'
[Service]
ExecStart=/bin/sleep infinity
UNIT
# A php-fpm pool that just runs (127.0.0.1:9101), and systemd-socket-proxyd in front of it (127.0.0.1:9102), exiting
# when idle: what users do instead of idlepool.
cat >"$tree/etc/php/8.2/fpm/idlepool/direct.conf" <<'CONF'
[global]
error_log = syslog
[direct]
user = www-data
group = www-data
listen = 127.0.0.1:9101
pm = ondemand
pm.max_children = 4
CONF
cat >"$units/direct-fpm.service" <<'UNIT'
[Service]
Type=notify
ExecStart=/usr/sbin/php-fpm8.2 --nodaemonize --fpm-config /etc/php/8.2/fpm/idlepool/direct.conf
UNIT
cat >"$units/proxied-fpm.socket" <<'UNIT'
[Socket]
ListenStream=127.0.0.1:9102
UNIT
cat >"$units/proxied-fpm.service" <<'UNIT'
[Unit]
Requires=direct-fpm.service
After=direct-fpm.service
[Service]
ExecStart=/lib/systemd/systemd-socket-proxyd --exit-idle-time=30s 127.0.0.1:9101
UNIT
app_sockets=""
if [[ " $parts " == *" app "* ]]; then
  # Debian's own package (the guest runs on this machine's root).
  dpkg -s phpmyadmin >/dev/null 2>&1 || DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
    phpmyadmin >/dev/null
  for name in pma-nofc pma-fc; do
    {
      printf '[global]\nerror_log = syslog\nprocess_control_timeout = 20s\n[%s]\n' "$name"
      printf 'user = www-data\ngroup = www-data\nlisten = /run/php/%s.sock.inherited\n' "$name"
      printf 'pm = ondemand\npm.max_children = 2\npm.process_idle_timeout = 10s\n'
      [[ $name == pma-fc ]] && echo "php_admin_value[opcache.file_cache] = /var/cache/idlepool/opcache/8.2/pma-fc"
    } >"$tree/etc/php/8.2/fpm/idlepool/$name.conf"
    printf '[pool php-fpm@%s.service]\nidle-timeout = 4s\n' "$name" >>"$tree/etc/idlepool/idlepool.conf"
    app_sockets+=" php-fpm@$name.socket"
    location="    location = /$name/ { fastcgi_pass unix:/run/php/$name.sock; include /etc/nginx/fastcgi_params;"
    location+=" fastcgi_param SCRIPT_FILENAME /usr/share/phpmyadmin/index.php; fastcgi_read_timeout 300s; }"
    sed -i "s|^  server { listen 127.0.0.1:80;\$|&\n$location|" "$tree/etc/idlepool-e2e/nginx.conf"
  done
fi
install -m 0755 "$here/guest/systemd-bench.sh" "$tree/usr/local/lib/idlepool-e2e/systemd-bench.sh"
cat >"$tree/usr/local/lib/idlepool-e2e/bench-driver.sh" <<DRIVER
#!/bin/bash
systemctl start php-fpm@alias.socket \$(for i in \$(seq 6); do echo php-fpm@react\$i.socket; done)$app_sockets
systemctl start idlepoold
BENCH_BUILD="$build" BENCH_PARTS="$parts" BENCH_APP_ROUNDS="${BENCH_APP_ROUNDS:-7}" /usr/local/lib/idlepool-e2e/systemd-bench.sh
DRIVER
chmod +x "$tree/usr/local/lib/idlepool-e2e/bench-driver.sh"
systemd_guest_tree "$tree" /usr/local/lib/idlepool-e2e/bench-driver.sh
[[ -n ${BENCH_ICOUNT:-} ]] && export IDLEPOOL_QEMU_ARGS="-icount shift=0,sleep=off"
echo "booting the benchmark guest (parts: $parts${BENCH_ICOUNT:+, instruction-count clock})"
IDLEPOOL_GUEST_MEMORY=${IDLEPOOL_GUEST_MEMORY:-3072} systemd_guest_boot "$tree" "$work/serial.log" "${BENCH_TIMEOUT:-2400}" "$top" "$build"
grep -a "BENCH:" "$work/serial.log" | tr -d '\r' | sed 's/^BENCH: //'
grep -q "IDLEPOOL-RESULT: rc=0" "$work/serial.log" || { echo "the benchmark guest did not finish"; tail -n 30 "$work/serial.log"; exit 1; }
