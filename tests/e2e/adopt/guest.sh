#!/bin/bash
# Runs inside the systemd guest (tests/e2e/run-adopt-e2e.sh builds it): a server as Debian ships it, Debian's
# php8.2-fpm.service (its unit, its php-fpm.conf, its stock www pool) with two site pools a panel wrote (TCP, and unix
# with listen.owner/group www-data and mode 0660), nginx in front with an ordinary site. The package is installed,
# upgraded, the pools adopted and given back under a client that never stops sending requests, the package removed
# and purged. One "IDLEPOOL-E2E: PASS|FAIL name: evidence" line per check; exits non-zero if any check failed.
set -u
here=/usr/local/lib/idlepool-adopt
failures=0
pass() { echo "IDLEPOOL-E2E: PASS $*"; }
fail() {
  echo "IDLEPOOL-E2E: FAIL $*"
  failures=$((failures + 1))
}
check() {  # NAME EVIDENCE CONDITION...
  local name=$1 evidence=$2
  shift 2
  if "$@"; then pass "$name: $evidence"; else fail "$name: $evidence"; fi
}
state() { systemctl show -p ActiveState --value "$1"; }
wait_until() {  # TIMEOUT_S COMMAND...: 0 once COMMAND succeeds
  local deadline=$((SECONDS + $1))
  shift
  until "$@"; do
    ((SECONDS < deadline)) || return 1
    sleep 0.2
  done
}
is_state() { [[ $(state "$1") == "$2" ]]; }
get() { curl -s -o /dev/null -w '%{http_code}' --max-time 30 "http://127.0.0.1$1"; }
serves() { [[ $(curl -s --max-time 30 "http://127.0.0.1$1") == ok* ]]; }
all_serve() {
  local p
  for p in "$@"; do serves "$p" || return 1; done
}
paths=(/www/ /tcp/ /unix/)
units=(idlepool-php8.2-fpm@www idlepool-php8.2-fpm@site-tcp idlepool-php8.2-fpm@site-unix)
originals=(/etc/php/8.2/fpm/pool.d/www.conf /etc/php/8.2/fpm/pool.d/site-tcp.conf /etc/php/8.2/fpm/pool.d/site-unix.conf)

# A client through nginx for the length of a command; prints its counts, sets client_failed (per path, assoc).
declare -A client_ok client_failed
under_load() {  # LABEL COMMAND...
  local label=$1 stop out
  shift
  stop=$(mktemp -u /tmp/client-stop.XXXX)
  out=$(mktemp /tmp/client-out.XXXX)
  python3 "$here/client.py" "$stop" "${paths[@]}" >"$out" &
  local pid=$!
  # The client must be running before the command: wait for its first requests to show up in nginx's log.
  sleep 2
  local began ended
  began=$(date +%s.%N)
  "$@" 2>&1 | sed 's/^/  | /'
  ended=$(date +%s.%N)
  sleep 2
  touch "$stop"
  wait "$pid"
  echo "  client during $label: $(cat "$out")"
  python3 -c 'import json,sys; s=json.load(open(sys.argv[1]))["started"]; print("  the %s ran from %.3fs to %.3fs of the client'"'"'s time" % (sys.argv[2], float(sys.argv[3]) - s, float(sys.argv[4]) - s))' \
    "$out" "$label" "$began" "$ended"
  local p
  for p in "${paths[@]}"; do
    client_ok[$p]=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]]["ok"])' "$out" "$p")
    client_failed[$p]=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]]["failed"])' "$out" "$p")
  done
}

echo "---- a Debian server: php8.2-fpm (www, site-tcp, site-unix) behind nginx ----"
rm -f /etc/nginx/sites-enabled/default
# dpkg's man-db trigger would rebuild the whole manual index over 9p (minutes): off, as on a server without man-db.
rm -f /var/lib/man-db/auto-update
# This machine's root is a container image whose policy-rc.d forbids starting services; a real server has none.
rm -f /usr/sbin/policy-rc.d
systemctl start php8.2-fpm.service nginx.service
check "debian-server" "php8.2-fpm and nginx serve the three pools" wait_until 60 all_serve "${paths[@]}" || {
  systemctl --no-pager status php8.2-fpm.service nginx.service 2>&1 | tail -n 30 | sed 's/^/  /'
  for p in "${paths[@]}"; do echo "  $p: $(curl -s --max-time 5 "http://127.0.0.1$p" | head -c 200)"; done
}
sha256sum "${originals[@]}" >/root/originals.sha256
stat -c '%n %a %U:%G %Y' "${originals[@]}" >/root/originals.stat

ours() { find /etc /usr/bin /usr/sbin /usr/share/doc /usr/share/man /lib/systemd /var/lib /var/cache /run -xdev \( -name '*idlepool*' -o -name 'idlepoolctl*' \) 2>/dev/null | sort; }
ours >/root/ours-before

echo "---- the package: install the previous build, upgrade to this one ----"
dpkg -i "$here/idlepool_old.deb" 2>&1 | tail -n 3 | sed 's/^/  /'
check "install" "idlepoold active after dpkg -i ($(dpkg-query -W -f '${Version}' idlepool))" \
  wait_until 60 is_state idlepoold.service active
old_pid=$(systemctl show -p MainPID --value idlepoold.service)
dpkg -i "$here/idlepool_new.deb" 2>&1 | tail -n 3 | sed 's/^/  /'
new_pid=$(systemctl show -p MainPID --value idlepoold.service)
check "upgrade" "$(dpkg-query -W -f '${Version}' idlepool), idlepoold restarted (pid $old_pid -> $new_pid)" \
  bash -c "[[ $(state idlepoold.service) == active && $old_pid != $new_pid ]]"
check "package-files" "units, templates, conffile, man pages" test -f /lib/systemd/system/idlepoold.service -a \
  -f /lib/systemd/system/idlepool-php8.2-fpm@.socket -a -f /etc/idlepool/idlepool.conf -a \
  -f /usr/share/man/man8/idlepoold.8.gz -a -f /usr/share/man/man1/idlepoolctl.1.gz -a \
  -f /usr/share/man/man5/idlepool.conf.5.gz
check "conffile" "/etc/idlepool/idlepool.conf is a conffile" bash -c \
  "dpkg-query -W -f '\${Conffiles}' idlepool | grep -q /etc/idlepool/idlepool.conf"
# The operator's settings for this test: short idle windows.
printf 'idle-timeout = 8s\nmin-uptime = 2s\n' >>/etc/idlepool/idlepool.conf
systemctl reload idlepoold.service
# A real Prometheus scraping idlepoold, with the monitoring mixin's rules, from here on (its queries are checked after
# the pools have been adopted, stopped and woken).
cat >/root/prometheus.yml <<PROM
global: {scrape_interval: 1s, evaluation_interval: 1s}
rule_files: [$here/monitoring/idlepool.rules.yml]
scrape_configs:
  - job_name: idlepool
    static_configs: [{targets: ['127.0.0.1:10071']}]
PROM
prometheus --config.file=/root/prometheus.yml --storage.tsdb.path=/tmp/prometheus --web.listen-address=127.0.0.1:9090 \
  >/tmp/prometheus.log 2>&1 &

echo "---- the plan ----"
idlepoolctl adopt | tee /root/plan.txt | sed 's/^/  | /'
check "plan" "three pools would be adopted; nothing changed" bash -c \
  "grep -c 'would adopt' /root/plan.txt | grep -qx 3 && sha256sum -c --quiet /root/originals.sha256 &&
   ! ls /etc/systemd/system/idlepool-php* 2>/dev/null"

echo "---- apply, while the client runs ----"
under_load "apply" idlepoolctl adopt --apply
for p in /www/ /unix/; do
  check "apply-unix-0-failed $p" "${client_ok[$p]} requests served, ${client_failed[$p]} failed during the switch" \
    bash -c "(( ${client_failed[$p]} == 0 && ${client_ok[$p]} > 0 ))"
done
# TCP: the master must let go of the port before systemd binds it; the window is measured by adopt and printed.
check "apply-tcp-window" "${client_ok[/tcp/]} served, ${client_failed[/tcp/]} failed in the TCP switch window" \
  bash -c "(( ${client_ok[/tcp/]} > 0 ))"
check "apply-result" "pool files out of pool.d, units enabled, master keeps a placeholder" bash -c \
  "! ls /etc/php/8.2/fpm/pool.d/www.conf /etc/php/8.2/fpm/pool.d/site-tcp.conf /etc/php/8.2/fpm/pool.d/site-unix.conf 2>/dev/null &&
   systemctl is-enabled --quiet idlepool-php8.2-fpm@www.socket && [[ \$(systemctl is-active php8.2-fpm.service) == active ]] &&
   test -f /etc/php/8.2/fpm/pool.d/idlepool-placeholder.conf"
check "apply-unix-permissions" "the unix pool's socket is www-data:www-data 0660 like php-fpm made it" bash -c \
  "[[ \$(stat -L -c '%U:%G %a' /run/php/site-unix.sock) == 'www-data:www-data 660' ]]"
before=$(stat -c %Y /etc/systemd/system/idlepool-php8.2-fpm@www.socket /etc/php/8.2/fpm/idlepool/www.conf)
idlepoolctl adopt --apply | tee /root/again.txt | sed 's/^/  | /'
check "idempotent" "a second apply changes nothing" bash -c \
  "grep -q 'Nothing to adopt' /root/again.txt && grep -c ': adopted (' /root/again.txt | grep -qx 3 &&
   [[ '$before' == \"\$(stat -c %Y /etc/systemd/system/idlepool-php8.2-fpm@www.socket /etc/php/8.2/fpm/idlepool/www.conf)\" ]]"

echo "---- compiled scripts are kept across stops ----"
names=(www site-tcp site-unix)
for name in "${names[@]}"; do
  dir=/var/cache/idlepool/opcache/8.2/$name
  check "opcache-file-cache-$name" "$dir: $(stat -c '%U %a' "$dir" 2>&1), $(find "$dir" -name '*.php.bin' 2>/dev/null | wc -l) compiled script(s)" \
    bash -c "[[ \$(stat -c '%U %a' $dir) == 'www-data 700' ]] && find $dir -name '*.php.bin' | grep -q . &&
             grep -qx 'php_admin_value\[opcache.file_cache\] = $dir' /etc/php/8.2/fpm/idlepool/$name.conf"
done

echo "---- idle pools stop, requests wake them ----"
idlepoolctl status | sed 's/^/  | /'
for u in "${units[@]}"; do
  check "status-$u" "idlepoolctl status shows it" bash -c "idlepoolctl list | grep -qx '$u.service'"
  check "idle-stop-$u" "stopped by idlepoold once idle" wait_until 90 is_state "$u.service" inactive
done
for i in 0 1 2; do
  check "wake-${units[$i]}" "a request through nginx wakes it" wait_until 30 serves "${paths[$i]}"
  check "woken-${units[$i]}" "and it is running again" is_state "${units[$i]}.service" active
done

echo "---- the monitoring mixin against a real Prometheus scraping idlepoold ----"
prom_has() { [[ $(curl -s "http://127.0.0.1:9090/api/v1/query?query=$1" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["data"]["result"]))' 2>/dev/null) -gt 0 ]]; }
wait_until 120 prom_has 'instance:idlepool_wakes:per_minute' || tail -n 20 /tmp/prometheus.log | sed 's/^/  /'
/usr/bin/python3 "$here/query_mixin.py" http://127.0.0.1:9090 "$here/monitoring" >/root/mixin.txt 2>&1
sed 's/^/  | /' /root/mixin.txt
check "monitoring-mixin" "$(tail -n 1 /root/mixin.txt): every recording rule, alert and dashboard query evaluated by Prometheus" \
  grep -q '^mixin queries: 0 failed' /root/mixin.txt

echo "---- a hosting panel keeps writing pool.d ----"
cat >/etc/php/8.2/fpm/pool.d/site-new.conf <<'POOL'
[site-new]
user = www-data
group = www-data
listen = /run/php/site-new.sock
listen.owner = www-data
listen.group = www-data
pm = ondemand
pm.max_children = 2
POOL
systemctl reload php8.2-fpm.service
check "panel-new-pool" "a new pool.d file + systemctl reload php8.2-fpm: served by the shared master" \
  wait_until 30 serves /new/
idlepoolctl check | sed 's/^/  | /'
check "check-names-unadopted" "idlepoolctl check names 8.2/site-new and how to adopt it" bash -c \
  "idlepoolctl check | grep -q '8.2/site-new .*not socket-activated.*idlepoolctl adopt 8.2/site-new'"
idlepoolctl check >/root/check.txt
check "check-opcache" "the shared master's pools keep no compiled script across a stop (warned); the adopted ones do" \
  bash -c "grep '^php8.2-fpm.service ' /root/check.txt | grep -q 'opcache keeps no file cache' &&
           [[ \$(grep -c '^idlepool-php8.2-fpm@' /root/check.txt) == 3 ]] &&
           ! grep '^idlepool-php8.2-fpm@' /root/check.txt | grep -q opcache"
cp /var/lib/idlepool/adopted/8.2/site-unix/original /etc/php/8.2/fpm/pool.d/site-unix.conf  # the panel saves it again
systemctl reload php8.2-fpm.service
check "panel-rewrites-adopted-same" "the master reloads; the copy is taken out again; the adopted pool serves" bash -c \
  "sleep 1; [[ \$(systemctl is-active php8.2-fpm.service) == active ]] && ! test -e /etc/php/8.2/fpm/pool.d/site-unix.conf &&
   curl -s http://127.0.0.1/unix/ | grep -q ^ok && curl -s http://127.0.0.1/new/ | grep -q ^ok"
{ cat /var/lib/idlepool/adopted/8.2/site-unix/original; echo "pm.max_requests = 500"; } \
  >/etc/php/8.2/fpm/pool.d/site-unix.conf  # the panel changes it
systemctl reload php8.2-fpm.service
check "panel-rewrites-adopted-changed" "the master survives; the file is set aside with a message" bash -c \
  "sleep 1; [[ \$(systemctl is-active php8.2-fpm.service) == active ]] && ! test -e /etc/php/8.2/fpm/pool.d/site-unix.conf &&
   ls /var/lib/idlepool/adopted/8.2/site-unix/rewritten-* && curl -s http://127.0.0.1/unix/ | grep -q ^ok &&
   journalctl -u php8.2-fpm.service -o cat | grep -q 'which idlepool-php8.2-fpm@site-unix.socket holds'"
rm -f /var/lib/idlepool/adopted/8.2/site-unix/rewritten-*

echo "---- removing the package never breaks a pool ----"
dpkg -r idlepool 2>&1 | tail -n 2 | sed 's/^/  /'
systemctl stop idlepool-php8.2-fpm@site-unix.service
systemctl reload php8.2-fpm.service
check "remove-keeps-pools" "idlepoold gone; every pool serves, a stopped one wakes; the master reloads" bash -c \
  "! test -e /usr/sbin/idlepoold && [[ \$(systemctl is-active idlepoold.service) != active ]] &&
   sleep 1 && [[ \$(systemctl is-active php8.2-fpm.service) == active ]] &&
   curl -s http://127.0.0.1/www/ | grep -q ^ok && curl -s http://127.0.0.1/tcp/ | grep -q ^ok &&
   curl -s http://127.0.0.1/unix/ | grep -q ^ok && curl -s http://127.0.0.1/new/ | grep -q ^ok"
dpkg -i "$here/idlepool_new.deb" 2>&1 | tail -n 1 | sed 's/^/  /'

echo "---- undo, while the client runs ----"
under_load "undo" idlepoolctl adopt --undo
for p in "${paths[@]}"; do
  echo "  $p: ${client_ok[$p]} served, ${client_failed[$p]} failed during the undo"
done
check "undo-bytes" "the original pool files are back byte for byte, with their mode, owner and time" bash -c \
  "sha256sum -c --quiet /root/originals.sha256 && [[ \"\$(stat -c '%n %a %U:%G %Y' ${originals[*]})\" == \"\$(cat /root/originals.stat)\" ]]"
check "undo-clean" "no unit, drop-in, placeholder, opcache file cache or state of the adoption is left" bash -c \
  "! ls /etc/systemd/system/idlepool-php* /etc/systemd/system/php8.2-fpm.service.d/idlepool-adopt.conf \
     /etc/php/8.2/fpm/pool.d/idlepool-placeholder.conf /etc/php/8.2/fpm/idlepool/* /run/php/.*.idlepool \
     /etc/tmpfiles.d/idlepool-php* /var/cache/idlepool/opcache/8.2/* 2>/dev/null &&
   ! ls -A /var/lib/idlepool/adopted/ 2>/dev/null | grep -q ."
# Each path once, right after the undo returned; any that does not answer at once is shown with what the master and
# nginx said, and the check waits (bounded) for the state it needs: every pool served by the shared master.
first="every path at once"
for p in "${paths[@]}" /new/; do
  t0=$SECONDS
  serves "$p" && continue
  first="not at once"
  echo "  $p right after the undo: $(curl -s -w ' (HTTP %{http_code})' --max-time 30 "http://127.0.0.1$p" | head -c 120), $((SECONDS - t0)) s"
done
if [[ $first != "every path at once" ]]; then
  journalctl -u php8.2-fpm.service -o short-monotonic -n 30 --no-pager | sed 's/^/  /'
  tail -n 10 /var/log/nginx/error.log | sed 's/^/  /'
fi
check "undo-serves" "the shared master serves every pool again ($first)" wait_until 60 all_serve "${paths[@]}" /new/
check "undo-master" "php8.2-fpm.service holds the addresses again" bash -c \
  "grep -q ' /run/php/site-unix.sock$' /proc/net/unix && [[ \$(systemctl is-active php8.2-fpm.service) == active ]]"

echo "---- purge ----"
dpkg -P idlepool 2>&1 | tail -n 2 | sed 's/^/  /'
left=$(ours | comm -13 /root/ours-before - | head)
check "purge" "no file of idlepool's is left${left:+: $left}" test -z "$left"
check "purge-serves" "every pool still served" all_serve "${paths[@]}" /new/

echo "IDLEPOOL-E2E: adoption checks done, $failures failed"
((failures == 0))
