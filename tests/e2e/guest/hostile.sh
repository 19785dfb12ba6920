# shellcheck shell=bash
# Hostile tenants, inside the systemd guest: what a site user (nobody, uid 65534, or a member of control-group) can
# do to idlepoold, done against the real daemon under the shipped unit. Sourced by scenarios.sh after the acceptance
# tests (same helpers). Each check counts the events it caused, per pool.
AS_NOBODY=(setpriv --reuid=65534 --regid=65534 --clear-groups)
daemon_field() {  # NAME: a field of idlepoolctl's daemon section
  "$CTL" --json=short status | python3 -c "import json,sys; print(json.load(sys.stdin)['daemon']['$1'])"
}
# Waits until CONDITION (a bash expression) holds, 20 s at most.
wait_until() {
  local deadline=$((SECONDS + 20))
  until eval "$1"; do
    ((SECONDS < deadline)) || return 1
    sleep 0.2
  done
}
accepts_of() { jfield "j['accepts']" show "$1"; }
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$(systemctl show -p MainPID --value idlepoold)/status"; }

# ---- the unit is confined: systemd's own exposure score, from the real systemd ----
exposure=$(systemd-analyze security idlepoold.service 2>/dev/null | awk '/Overall exposure level/ {print $(NF-2)}')
check "unit-confined" "systemd-analyze security idlepoold.service: $exposure (at most 2.5)" \
  awk -v e="${exposure:-9}" 'BEGIN { exit !(e <= 2.5) }'

# ---- forged systemd signals: addressed to idlepoold by nobody, and broadcast ----
# A forged Reloading would make idlepoold read every pool again; a forged PropertiesChanged would mark a running pool
# stopped. Only PID 1's broadcasts count: both are dropped and counted, and nothing is read.
fcgi /run/php/alias.sock hello.php >/dev/null
"$CTL" pin php-fpm@alias.service >/dev/null
wait_state php-fpm@alias.service active 30
pid=$(systemctl show -p MainPID --value idlepoold)
me=$(busctl --system list --unique --no-legend | awk -v p="$pid" '$2 == p {print $1; exit}')
dropped0=$(daemon_field bus_signals_dropped) read0=$(daemon_field units_read)
alias_path=/org/freedesktop/systemd1/unit/php_2dfpm_40alias_2eservice
"${AS_NOBODY[@]}" busctl --system emit --destination="$me" /org/freedesktop/systemd1 \
  org.freedesktop.systemd1.Manager Reloading b false
"${AS_NOBODY[@]}" busctl --system emit --destination="$me" "$alias_path" org.freedesktop.DBus.Properties \
  PropertiesChanged 'sa{sv}as' org.freedesktop.systemd1.Unit 2 ActiveState s inactive SubState s dead 0
"${AS_NOBODY[@]}" busctl --system emit "$alias_path" org.freedesktop.DBus.Properties \
  PropertiesChanged 'sa{sv}as' org.freedesktop.systemd1.Unit 2 ActiveState s inactive SubState s dead 0
wait_until '(( $(daemon_field bus_signals_dropped) >= dropped0 + 2 ))'
dropped=$(daemon_field bus_signals_dropped) read=$(daemon_field units_read)
seen=$(jfield "j['state']" show php-fpm@alias.service)
check "forged-signals-dropped" "idlepoold is $me; dropped $dropped0 -> $dropped (2 sent to it, 1 broadcast the bus does not deliver as systemd's); units read $read0 -> $read; alias seen '$seen', systemd says '$(state php-fpm@alias.service)'" \
  bash -c "(( $dropped == $dropped0 + 2 && $read == $read0 )) && [[ '$seen' == active ]]"
"$CTL" unpin php-fpm@alias.service >/dev/null

# ---- a same-named socket: nobody binds /run/php/alias.sock in their own user and mount namespace ----
# While it is bound, idlepoold starts and registers its pools. Connections to the impostor count nowhere; each
# request to the real pool counts once.
rm -rf /tmp/impostor && mkdir -m 0777 /tmp/impostor
"${AS_NOBODY[@]}" unshare -Urm bash -c '
  mount -t tmpfs tmpfs /run/php || exit 1
  exec python3 -c "
import os, socket, time
s = socket.socket(socket.AF_UNIX); s.bind(\"/run/php/alias.sock\"); s.listen(16)
open(\"/tmp/impostor/bound\", \"w\").close()
while not os.path.exists(\"/tmp/impostor/go\"): time.sleep(0.05)
for i in range(5):
    c = socket.socket(socket.AF_UNIX); c.connect(\"/run/php/alias.sock\"); s.accept()[0].close(); c.close()
open(\"/tmp/impostor/done\", \"w\").close()
time.sleep(60)"' &
impostor=$!
wait_until '[[ -e /tmp/impostor/bound ]]'
systemctl restart idlepoold
wait_for_pool php-fpm@alias.service
"$CTL" pin php-fpm@alias.service >/dev/null
accepts0=$(accepts_of php-fpm@alias.service)
touch /tmp/impostor/go
wait_until '[[ -e /tmp/impostor/done ]]'
for _ in 1 2 3; do fcgi /run/php/alias.sock hello.php >/dev/null; done
wait_until '(( $(accepts_of php-fpm@alias.service) >= accepts0 + 3 ))'
accepts=$(accepts_of php-fpm@alias.service)
check "impostor-socket-ignored" "impostor bound ($(ls /tmp/impostor | tr '\n' ' ')) while idlepoold registered; 5 connections to it, 3 requests to the pool: accepts $accepts0 -> $accepts" \
  test "$accepts" -eq $((accepts0 + 3))
kill "$impostor" 2>/dev/null
pkill -u 65534 -f impostor 2>/dev/null
"$CTL" unpin php-fpm@alias.service >/dev/null

# ---- an acknowledgement flood from nobody: idlepoold keeps none of them ----
ack_rss0=$(rss_kb)
flood=$("${AS_NOBODY[@]}" /usr/local/lib/idlepool-e2e/ack_flood 300000 2>&1)
"$CTL" status >/dev/null
ack_rss=$(rss_kb)
check "ack-flood-bounded" "nobody: $flood; idlepoold RSS ${ack_rss0} -> ${ack_rss} kB (keeping them cost 6.8 MB); resyncs $(daemon_field process_resyncs)" \
  bash -c "(( $ack_rss - $ack_rss0 < 2048 ))"

# ---- pools' configuration files pointing root at a FIFO and /dev/zero; /var/run is /run ----
# These pools' sockets listen, but their services are never started (php-fpm itself would hang on the FIFO).
mkdir -p /run/idlepool-hostile
mkfifo /run/idlepool-hostile/a-fifo.conf
ln -sf /dev/zero /run/idlepool-hostile/b-zero.conf
pool_conf_guest() {  # NAME LISTEN [EXTRA LINE]
  printf '[global]\nerror_log = syslog\nprocess_control_timeout = 20s\n%s\n[%s]\nuser = www-data\ngroup = www-data\nlisten = %s\npm = ondemand\npm.max_children = 2\n' \
    "${3:-}" "$1" "$2" >"/etc/php/8.2/fpm/idlepool/$1.conf"
}
pool_conf_guest fifo /run/php/fifo.sock.inherited "include = /run/idlepool-hostile/*.conf"
pool_conf_guest varrun /var/run/php/varrun.sock
systemctl start php-fpm@fifo.socket php-fpm@varrun.socket
t=$(now)
"$CTL" reload >/dev/null
wait_for_pool php-fpm@fifo.service
wait_for_pool php-fpm@varrun.service
fifo_unsafe=$(jfield "j['unsafe']" show php-fpm@fifo.service)
check "config-fifo-and-zero" "$(since "$t")s to take both in; fifo pool: '$fifo_unsafe'" \
  grep -q "a-fifo.conf is not a regular file" <<<"$fifo_unsafe"
varrun_unsafe=$(jfield "j['unsafe']" show php-fpm@varrun.service)
check "config-var-run-is-run" "listen = /var/run/php/varrun.sock under a socket unit on /run/php/varrun.sock: '$varrun_unsafe'" \
  grep -q "listens on /run/php/varrun.sock, the socket unit's own path" <<<"$varrun_unsafe"
systemctl stop php-fpm@fifo.socket php-fpm@varrun.socket
rm -rf /run/idlepool-hostile /etc/php/8.2/fpm/idlepool/fifo.conf /etc/php/8.2/fpm/idlepool/varrun.conf

# ---- control-group: its members read, only root changes anything, strangers are not let in ----
groupadd -g 4242 idlepool-ops
sed -i '1i control-group = idlepool-ops' /etc/idlepool/idlepool.conf
systemctl restart idlepoold
wait_for_pool php-fpm@alias.service
AS_MEMBER=(setpriv --reuid=4242 --regid=4242 --groups=4242)
member_status=$("${AS_MEMBER[@]}" "$CTL" --no-legend list 2>&1 | wc -l)
member_pin=$("${AS_MEMBER[@]}" "$CTL" pin php-fpm@alias.service 2>&1)
member_pin_rc=$?
pinned=$(jfield "j['pinned']" show php-fpm@alias.service)
stranger=$("${AS_NOBODY[@]}" "$CTL" status 2>&1)
stranger_rc=$?
check "control-group-reads" "a member lists $member_status pools; socket $(stat -c '%A %U:%G' /run/idlepool/control.sock) $(getfacl -p /run/idlepool/control.sock 2>/dev/null | grep -m1 '^group:idlepool-ops')" \
  test "$member_status" -gt 0
check "control-group-cannot-change" "a member's pin: exit $member_pin_rc, '$member_pin'; pinned: $pinned" \
  bash -c "(( $member_pin_rc != 0 )) && [[ '$member_pin' == *'needs root'* && '$pinned' == False ]]"
check "control-socket-strangers" "nobody: exit $stranger_rc, '$stranger'" \
  bash -c "(( $stranger_rc != 0 )) && [[ '$stranger' == *'ermission denied'* ]]"
sed -i '/^control-group = /d' /etc/idlepool/idlepool.conf

# ---- the metrics port: a token keeps it to Prometheus; nobody cannot hold every connection ----
python3 - <<'PY' &
import os, socket, time
os.setgid(65534); os.setuid(65534)
held = []
for i in range(64):
    try:
        s = socket.create_connection(("127.0.0.1", 10071)); held.append(s)
    except OSError:
        pass
open("/tmp/impostor/held", "w").write(str(len(held)))
time.sleep(20)
PY
holder=$!
wait_until '[[ -s /tmp/impostor/held ]]'
t=$(now)
code=$(curl -s -o /dev/null -m 5 -w '%{http_code}' http://127.0.0.1:10071/metrics)
check "metrics-not-held" "nobody opened $(cat /tmp/impostor/held) idle connections; a scrape got $code in $(since "$t")s" test "$code" = 200
kill "$holder" 2>/dev/null
token=$(head -c 24 /dev/urandom | base64 | tr -d '/+=')
install -m 0640 -o root -g root /dev/null /etc/idlepool/metrics.token
echo "$token" >/etc/idlepool/metrics.token
sed -i '1i metrics-token-file = /etc/idlepool/metrics.token' /etc/idlepool/idlepool.conf
"$CTL" reload >/dev/null
without=$(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:10071/metrics)
wrong=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer x$token" http://127.0.0.1:10071/metrics)
with=$(curl -s -H "Authorization: Bearer $token" http://127.0.0.1:10071/metrics | grep -c '^idlepool_build_info')
chmod 0644 /etc/idlepool/metrics.token
"$CTL" reload >/tmp/reload-open.txt 2>&1
open_rc=$?
still=$(curl -s -H "Authorization: Bearer $token" http://127.0.0.1:10071/metrics | grep -c '^idlepool_build_info')
check "metrics-token" "no token: $without, a wrong one: $wrong, the right one: $with build_info line; a world-readable token file: reload exit $open_rc '$(head -c 160 /tmp/reload-open.txt)', still served to the token: $still" \
  bash -c "[[ $without == 401 && $wrong == 401 && $with == 1 && $open_rc != 0 && $still == 1 ]]"
sed -i '/^metrics-token-file = /d' /etc/idlepool/idlepool.conf
rm -f /etc/idlepool/metrics.token
"$CTL" reload >/dev/null
