#!/bin/bash
# Runs inside the systemd guest (tests/e2e/run-systemd-e2e.sh builds it): idlepoold as a systemd service over real
# php-fpm pools behind socket units. One "IDLEPOOL-E2E: PASS|FAIL name: evidence" line per check; exits non-zero if
# any check failed.
set -u
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
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
state() { systemctl show -p ActiveState --value "$1"; }
# FastCGI request straight to a pool; prints the body.
fcgi() {  # ADDRESS SCRIPT [QUERY]
  SCRIPT_FILENAME=/srv/idlepool/$2 REQUEST_METHOD=GET QUERY_STRING=${3:-} timeout 60 cgi-fcgi -bind -connect "$1" 2>&1 |
    tr -d '\r' | sed '1,/^$/d'
}
wait_state() {  # UNIT STATE TIMEOUT_S: 0 when UNIT reaches STATE in time
  local deadline=$((SECONDS + $3))
  while ((SECONDS < deadline)); do
    [[ $(state "$1") == "$2" ]] && return 0
    sleep 0.2
  done
  return 1
}
journal_has() { journalctl -u idlepoold --no-pager -o cat | grep -q -- "$1"; }
dump() {
  echo "---- idlepoold journal ----"
  journalctl -u idlepoold --no-pager -o cat | tail -n 40 | sed 's/^/  /'
  systemctl --no-pager status 'php-fpm*' 2>&1 | sed 's/^/  /' | head -n 40
}

systemctl start php-fpm@alias.socket php-fpm@naive.socket php-fpm-seed.socket

# ---- the daemon starts as the shipped unit (Type=notify, hardened) ----
t=$(now)
systemctl start idlepoold.service
check "daemon-ready" "idlepoold active after $(since "$t")s, status '$(systemctl show -p StatusText --value idlepoold)'" \
  test "$(state idlepoold)" = active
check "daemon-discovers" "manages alias, naive and seed" \
  bash -c 'journalctl -u idlepoold -o cat | grep -q "managing php-fpm@alias.service" &&
           journalctl -u idlepoold -o cat | grep -q "managing php-fpm@naive.service" &&
           journalctl -u idlepoold -o cat | grep -q "managing php-fpm-seed.service"'
check "naive-refused" "$(journalctl -u idlepoold -o cat | grep -m1 'naive.service will never be stopped' | cut -c1-160)" \
  journal_has "php-fpm@naive.service will never be stopped: php-fpm pool \[naive\] listens on /run/php/naive.sock, the socket unit's own path"

# ---- the first request starts each pool (socket activation) ----
declare -A answered
for pool in alias:/run/php/alias.sock naive:/run/php/naive.sock seed:127.0.0.1:8888; do
  name=${pool%%:*} addr=${pool#*:}
  t=$(now)
  body=$(fcgi "$addr" hello.php)
  answered[$name]=$(now)
  check "wake-$name" "first request answered in $(since "$t")s: '$body'" test -n "$body"
done
# php-fpm retitles its master "php-fpm: master process (CONFIG)": that is what is looked for.
masters() { pgrep -f "master process \(/etc/php/8.2/fpm/idlepool/($1)\.conf\)" | wc -l; }
check "processes-present" "$(masters 'alias|seed') masters of alias and seed running" test "$(masters 'alias|seed')" -eq 2

# ---- idle pools stop after their timeout (6 s), the naive one never ----
for pool in alias:php-fpm@alias.service seed:php-fpm-seed.service; do
  name=${pool%%:*} unit=${pool#*:}
  if wait_state "$unit" inactive 40; then
    pass "idle-stop-$name: $unit stopped $(since "${answered[$name]}")s after its last request (idle-timeout 6s)"
  else
    fail "idle-stop-$name: $unit still $(state "$unit") $(since "${answered[$name]}")s after its last request"
    dump
  fi
done
check "processes-gone" "$(masters 'alias|seed') masters of alias and seed left" test "$(masters 'alias|seed')" -eq 0
check "naive-never-stopped" "php-fpm@naive is $(state php-fpm@naive.service) $(since "${answered[naive]}")s after its last request" \
  test "$(state php-fpm@naive.service)" = active
check "socket-kept" "/run/php/alias.sock is still a socket and php-fpm@alias.socket is $(state php-fpm@alias.socket)" \
  bash -c 'test -S /run/php/alias.sock && test "$(systemctl show -p SubState --value php-fpm@alias.socket)" = listening'
check "stop-via-bus" "$(journalctl -u idlepoold -o cat | grep -m1 'stopping php-fpm@alias.service' | cut -c1-160)" \
  journal_has "stopping php-fpm@alias.service: idle for"

# ---- a request to a stopped pool is served: the socket unit wakes it ----
t=$(now)
body=$(fcgi /run/php/alias.sock hello.php)
check "served-after-stop" "answered in $(since "$t")s: '$body', php-fpm@alias is $(state php-fpm@alias.service)" \
  bash -c "test -n '$body' && test \"\$(systemctl show -p ActiveState --value php-fpm@alias.service)\" = active"
body=$(fcgi 127.0.0.1:8888 hello.php)
check "served-after-stop-tcp" "'$body'" test -n "$body"
check "wake-counted" "$(journalctl -u idlepoold -o cat | grep -c 'woke up (socket activation)') wakes logged" \
  bash -c '(( $(journalctl -u idlepoold -o cat | grep -c "woke up (socket activation)") == 2 ))'

# ---- the other stop method: systemctl stop --no-block, after a configuration reload (SIGHUP) ----
sed -i 's/^max-stops-per-second.*/&\nstop-method = systemctl/' /etc/idlepool/idlepool.conf
systemctl reload idlepoold
if wait_state php-fpm@alias.service inactive 40; then
  check "stop-via-systemctl" "$(journalctl -u idlepoold -o cat | grep 'stopping php-fpm@alias.service' | tail -n1 | cut -c1-160)" \
    bash -c 'journalctl -u idlepoold -o cat | grep "stopping php-fpm@alias.service" | tail -n1 | grep -q "systemctl stop --no-block"'
else
  fail "stop-via-systemctl: php-fpm@alias still $(state php-fpm@alias.service)"
  dump
fi
status=$(systemctl show -p StatusText --value idlepoold)
check "daemon-status" "status '$status'" bash -c "test '$(state idlepoold)' = active && [[ '$status' == *'3 stops, 2 wakes' ]]"

# ---- work in flight: a request longer than the idle timeout is never cut ----
sed -i 's/^stop-method = systemctl$/stop-method = bus/' /etc/idlepool/idlepool.conf
systemctl reload idlepoold
t=$(now)
body=$(fcgi /run/php/alias.sock slow.php s=12)
took=$(since "$t")
check "in-flight-not-cut" "a 12 s request (idle-timeout 6s) answered '$body' after ${took}s" test "$body" = "slept 12"
check "in-flight-deferred" "$(journalctl -u idlepoold -o cat | grep -m1 'php-fpm@alias.service: wait (in flight' | cut -c1-120)" \
  journal_has "php-fpm@alias.service: wait (in flight: 1 active"
t=$(now)
if wait_state php-fpm@alias.service inactive 40; then
  pass "stop-after-in-flight: php-fpm@alias stopped $(since "$t")s after its long request completed"
else
  fail "stop-after-in-flight: php-fpm@alias still $(state php-fpm@alias.service)"
fi

# ---- daemon restart: nothing is stopped on stale data; stopping carries on afterwards ----
fcgi /run/php/alias.sock hello.php >/dev/null
sleep 4  # 4 of the 6 s idle window pass before the restart
t=$(now)
systemctl restart idlepoold
sleep 4  # 8 s after the last request: the old daemon would have stopped it by now
check "restart-no-early-stop" "php-fpm@alias is $(state php-fpm@alias.service) 4 s after a restart, 8 s after its last request" \
  test "$(state php-fpm@alias.service)" = active
if wait_state php-fpm@alias.service inactive 30; then
  pass "restart-then-stop: php-fpm@alias stopped $(since "$t")s after the restart (a whole window of its own)"
else
  fail "restart-then-stop: php-fpm@alias still $(state php-fpm@alias.service) $(since "$t")s after the restart"
fi

# ---- a socket path that vanishes when its service stops is restored, and that pool is never stopped again ----
systemctl start vanish.socket
systemctl start vanish.service
if wait_state vanish.service inactive 40; then
  sleep 1
  check "vanished-socket-restored" "$(journalctl -u idlepoold -o cat | grep -m1 'vanished' | cut -c1-150)" \
    bash -c 'test -S /run/idlepool-vanish.sock && journalctl -u idlepoold -o cat | grep -q "/run/idlepool-vanish.sock vanished"'
  systemctl start vanish.service
  sleep 10
  check "vanished-never-again" "vanish.service is $(state vanish.service) 10 s after starting again (idle-timeout 6s)" \
    test "$(state vanish.service)" = active
else
  fail "vanished-socket-restored: vanish.service was never stopped ($(state vanish.service))"
fi

((failures == 0)) || dump
echo "IDLEPOOL-E2E: $failures failed"
exit $((failures > 0))
