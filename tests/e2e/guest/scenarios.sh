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
  if "$@"; then pass "$name: $evidence"; else
    fail "$name: $evidence"
    return 1
  fi
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
CTL=${IDLEPOOLCTL:?}
# A field of idlepoolctl's JSON, by a Python expression on `j`.
jfield() {  # EXPR VERB...
  local expr=$1
  shift
  "$CTL" --json=short "$@" | python3 -c "import json,sys; j=json.load(sys.stdin); print($expr)"
}
# Right after a daemon restart that began at T: "STATE RULE PLANNED", PLANNED being how long after T its stop is
# planned (the time from T to the query, plus the daemon's stops-in). A daemon that stopped nothing on stale data
# plans it at least a whole idle window after T, however long the restart took.
# A pool's idle window as the daemon restarted at T (date +%s.%N) left it: "STATE RULE SECONDS", where SECONDS is how
# long after T its stop is planned, or, when the new daemon has stopped it already (a restart that took longer than the
# pool's idle timeout), how long after T it stopped ("inactive stopped SECONDS", from systemd's own timestamp). Either
# is at least the idle timeout when nothing was stopped on stale data, however long the restart took.
window_after_restart() {  # UNIT T
  local asked
  asked=$(since "$2")
  "$CTL" --json=short show "$1" | python3 -c '
import json, subprocess, sys, time
j = json.load(sys.stdin)
s = j["stops_in_seconds"]
if j["state"] == "inactive":
    exit_mono = int(subprocess.check_output(["systemctl", "show", "-P", "ActiveExitTimestampMonotonic", sys.argv[3]])) / 1e6
    stopped = time.time() - (time.monotonic() - exit_mono)
    print("inactive stopped", "%.2f" % (stopped - float(sys.argv[2])))
else:
    print(j["state"], j["rule"], "%.2f" % (float(sys.argv[1]) + s) if s is not None else "none")' "$asked" "$2" "$1"
}
# Whether window_after_restart's answer keeps a whole idle window of SECONDS after the restart began: a stop planned,
# decided at that moment ("idle": a restart slower than the window, the stop under way as it was asked), or made.
whole_window() {  # STATE RULE SECONDS WINDOW
  [[ ($1 == active && ($2 == idle-timeout || $2 == idle)) || ($1 == inactive && $2 == stopped) ]] &&
    awk -v p="$3" -v w="$4" 'BEGIN { exit !(p >= w - 0.05) }'
}
# Stops and wakes of one pool, from idlepoolctl ("stops wakes").
counts() {  # UNIT
  jfield "j['stops_total'], j['wakes']" show "$1" | tr -d '(),'
}
metric() {  # SERIES (exact, with labels): its value, or "absent"
  curl -fsS http://127.0.0.1:10071/metrics | awk -v s="$1" '$1 == s {print $2; found=1} END {if (!found) print "absent"}'
}
# What idlepoold and systemd said about UNIT lately (after a failed check about it).
unit_story() {  # UNIT
  echo "---- $1, idlepoold's and systemd's words ----"
  journalctl --no-pager -o short-monotonic -n 400 _SYSTEMD_UNIT=idlepoold.service + _PID=1 | grep -F "${1%.service}" |
    tail -n 20 | sed 's/^/  /'
}
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
# alias and seed are pinned while their processes are looked at (a slow machine could otherwise see them stopped
# already); their idle windows are measured from the unpin.
"$CTL" pin php-fpm@alias.service >/dev/null
"$CTL" pin php-fpm-seed.service >/dev/null
for pool in alias:/run/php/alias.sock naive:/run/php/naive.sock seed:127.0.0.1:8888; do
  name=${pool%%:*} addr=${pool#*:}
  t=$(now)
  body=$(fcgi "$addr" hello.php)
  check "wake-$name" "first request answered in $(since "$t")s: '$body'" test -n "$body"
done
# php-fpm retitles its master "php-fpm: master process (CONFIG)": that is what is looked for.
masters() { pgrep -f "master process \(/etc/php/8.2/fpm/idlepool/($1)\.conf\)" | wc -l; }
check "processes-present" "$(masters 'alias|seed') masters of alias and seed running" test "$(masters 'alias|seed')" -eq 2
declare -A answered
"$CTL" unpin php-fpm@alias.service >/dev/null
answered[alias]=$(now)
"$CTL" unpin php-fpm-seed.service >/dev/null
answered[seed]=$(now)
answered[naive]=$(now)

# ---- idle pools stop after their timeout (6 s), the naive one never ----
for pool in alias:php-fpm@alias.service seed:php-fpm-seed.service; do
  name=${pool%%:*} unit=${pool#*:}
  if wait_state "$unit" inactive 40; then
    pass "idle-stop-$name: $unit stopped $(since "${answered[$name]}")s after it was unpinned (idle-timeout 6s)"
  else
    fail "idle-stop-$name: $unit still $(state "$unit") $(since "${answered[$name]}")s after it was unpinned"
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
# alias (woken above) is pinned until the reload has been taken in, so that its next stop is the new method's.
"$CTL" pin php-fpm@alias.service >/dev/null
fcgi /run/php/alias.sock hello.php >/dev/null  # running (woken if it was stopped meanwhile), and pinned
reloads=$(journalctl -u idlepoold -o cat --no-pager | grep -c 'configuration reloaded from')
sed -i 's/^max-stops-per-second.*/&\nstop-method = systemctl/' /etc/idlepool/idlepool.conf
systemctl reload idlepoold
deadline=$((SECONDS + 30))
until (($(journalctl -u idlepoold -o cat --no-pager | grep -c 'configuration reloaded from') > reloads)) || ((SECONDS > deadline)); do
  sleep 0.2
done
"$CTL" unpin php-fpm@alias.service >/dev/null
if wait_state php-fpm@alias.service inactive 40; then
  check "stop-via-systemctl" "$(journalctl -u idlepoold -o cat | grep 'stopping php-fpm@alias.service' | tail -n1 | cut -c1-160)" \
    bash -c 'journalctl -u idlepoold -o cat | grep "stopping php-fpm@alias.service" | tail -n1 | grep -q "systemctl stop --no-block"'
else
  fail "stop-via-systemctl: php-fpm@alias still $(state php-fpm@alias.service)"
  dump
fi
# Counted per pool and per event this script caused: alias, stopped now, was stopped once more than it was woken, and
# woken at least once (the request above); how often depends on the machine's speed (a slow one sees it stopped and
# woken once more between the checks), never this invariant. The TCP pool was woken once and stopped at least once.
# The summary line must agree with the pools it sums, in one answer.
read -r alias_stops alias_wakes < <(counts php-fpm@alias.service)
read -r seed_stops seed_wakes < <(counts php-fpm-seed.service)
summary_ok=$("$CTL" --json=short status | python3 -c '
import json, sys
j = json.load(sys.stdin)
stops = sum(p["stops_total"] for p in j["pools"]); wakes = sum(p["wakes"] for p in j["pools"])
print("yes" if j["summary"].endswith(f"{stops} stops, {wakes} wakes") else "no: " + j["summary"])')
check "daemon-status" "alias $alias_stops stops $alias_wakes wakes, seed $seed_stops stops $seed_wakes wakes; summary agrees: $summary_ok; '$(systemctl show -p StatusText --value idlepoold)'" \
  bash -c "test '$(state idlepoold)' = active && (( $alias_stops == $alias_wakes + 1 && $alias_wakes >= 1 && $seed_wakes >= 1 && $seed_stops >= 1 )) && test '$summary_ok' = yes"

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
# After a restart the new daemon has watched the pool for a moment only: its planned stop is a whole idle window away,
# whatever the restart cost (measured from the new daemon's own registration of the pool's sockets).
woke=$(fcgi /run/php/alias.sock hello.php)
t=$(now)
systemctl restart idlepoold  # returns at READY
read -r st rule planned < <(window_after_restart php-fpm@alias.service "$t")
check "restart-no-early-stop" "after a restart (READY after $(since "$t") s): php-fpm@alias $st, $rule, its stop planned (or made) ${planned} s after the restart began (idle-timeout 6s; '$woke' before)" \
  whole_window "$st" "$rule" "$planned" 6 ||
  unit_story php-fpm@alias.service
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

# ---- a service of another kind: a Python HTTP server behind a socket unit ----
systemctl start pyhttp.socket
"$CTL" reload >/dev/null
wait_for_pool() {  # UNIT: managed, its sockets watched by the probe, within 30 s
  local deadline=$((SECONDS + 30))
  until [[ $(jfield "all('accepts' in s for s in j['sockets'])" show "$1" 2>/dev/null) == True ]] || ((SECONDS > deadline)); do
    sleep 0.2
  done
}
wait_for_pool pyhttp.service
before=$(jfield "j['requests']" show pyhttp.service)
py_ok=0
for i in 1 2 3; do [[ $(curl -fsS -m 60 http://127.0.0.1:8090/) == "hello from python" ]] && py_ok=$((py_ok + 1)); done
after=$(jfield "j['requests']" show pyhttp.service)
py_kind=$(jfield "j['kind']" show pyhttp.service)
check "generic-kind" "pyhttp is $py_kind; 3 requests: $py_ok answered, requests $before -> $after" \
  bash -c "test '$py_kind' = generic && (( $py_ok == 3 && $after == $before + 3 ))"
t=$(now)
if wait_state pyhttp.service inactive 40; then
  r=$(curl -fsS -m 60 http://127.0.0.1:8090/)
  py_wakes=$(jfield "j['wakes']" show pyhttp.service)
  check "generic-stop-wake" "stopped $(since "$t")s after its last request, then woken: '$r', $py_wakes wakes" \
    bash -c "[[ '$r' == 'hello from python' ]] && (( $py_wakes == 1 ))"
else
  fail "generic-stop-wake: pyhttp.service still $(state pyhttp.service)"
fi

# ---- idlepoolctl and metrics ----
lib=/usr/local/lib/idlepool-e2e
"$CTL" status >/tmp/status.txt
rc=$?
check "ctl-status-table" "exit $rc; $(head -n1 /tmp/status.txt | tr -s ' '); $(tail -n1 /tmp/status.txt)" \
  bash -c "(( $rc == 0 )) && grep -q '^POOL' /tmp/status.txt && grep -q '^php-fpm@alias.service' /tmp/status.txt && grep -q 'pools listed' /tmp/status.txt"
"$CTL" --json=short status >/tmp/status.json
check "ctl-status-json" "$(python3 $lib/check_status.py /tmp/status.json 2>&1 | tail -n1)" python3 $lib/check_status.py /tmp/status.json

before=$(jfield "j['requests']" show php-fpm-seed.service)
for i in 1 2 3 4 5; do fcgi 127.0.0.1:8888 hello.php >/dev/null; done
after=$(jfield "j['requests']" show php-fpm-seed.service)
curl -sS -m 10 -o /tmp/metrics.txt -w '%{http_code}' http://127.0.0.1:10071/metrics >/tmp/curl.code 2>/tmp/curl.err
scraped=$(awk '$1 == "idlepool_pool_requests_total{pool=\"php-fpm-seed.service\",socket=\"127.0.0.1:8888\"}" {print $2}' /tmp/metrics.txt)
check "requests-counted" "5 requests: idlepoolctl $before -> $after, metrics '$scraped' (http $(cat /tmp/curl.code) $(cat /tmp/curl.err))" \
  bash -c "(( $after == $before + 5 )) && [[ '$scraped' == '$after' ]]"
if [[ -z $scraped ]]; then
  echo "  ---- metrics diagnosis ----"
  ss -ltnp | sed 's/^/  /'
  journalctl -u idlepoold -o cat --no-pager | tail -n 15 | sed 's/^/  /'
fi
stops_ctl=$(jfield "j['stops'].get('idle', 0)" show php-fpm@alias.service)
stops=$(metric 'idlepool_pool_stops_total{pool="php-fpm@alias.service",reason="idle"}')
check "stops-in-metrics" "stops_total{alias,idle} = $stops, idlepoolctl says $stops_ctl" \
  bash -c "[[ '$stops' == '$stops_ctl' ]] && (( $stops_ctl >= 1 ))"
# A stopped pool woken by a request: the time from its start to its first request is a wake-latency observation.
state php-fpm@alias.service >/tmp/alias-state
t=$(now)
fcgi /run/php/alias.sock hello.php >/dev/null
woke_in=$(since "$t")
latency=$(metric 'idlepool_pool_wake_latency_seconds_count{pool="php-fpm@alias.service"}')
lsum=$(metric 'idlepool_pool_wake_latency_seconds_sum{pool="php-fpm@alias.service"}')
check "wake-latency" "alias was $(cat /tmp/alias-state), a request woke it in ${woke_in}s; wake_latency count $latency, sum ${lsum}s" \
  bash -c "test \"\$(cat /tmp/alias-state)\" = inactive && [[ '$latency' == 1 ]] && awk -v s='$lsum' -v w='$woke_in' 'BEGIN { exit !(s > 0 && s <= w) }'"
released=$(metric 'idlepool_pool_memory_released_bytes_total{pool="php-fpm@alias.service"}')
check "memory-released" "memory released by alias' stops: $released bytes" bash -c "[[ '$released' != absent ]] && (( ${released%.*} > 0 ))"
curl -fsS http://127.0.0.1:10071/metrics >/tmp/metrics.txt
check "metrics-parse" "promtool on $(wc -l </tmp/metrics.txt) lines: $(promtool check metrics </tmp/metrics.txt 2>&1 | head -n2 | tr '\n' ' ')" \
  bash -c 'test -s /tmp/metrics.txt && promtool check metrics </tmp/metrics.txt'
check "metrics-names" "$(grep -c '^# TYPE idlepool_' /tmp/metrics.txt) idlepool families; $(grep '^idlepool_probe_tier.*accepts' /tmp/metrics.txt)" \
  bash -c "grep -q '^idlepool_build_info{version=' /tmp/metrics.txt && grep -q '^idlepool_probe_tier{counter=\"accepts\",tier=\"fentry\"} 1' /tmp/metrics.txt"

"$CTL" check >/tmp/check.txt
rc=$?
check "ctl-check" "exit $rc; $(grep naive /tmp/check.txt | cut -c1-90)" \
  bash -c "(( $rc == 1 )) && grep -q '^php-fpm@naive.service  *UNSAFE' /tmp/check.txt && grep -q '^php-fpm@alias.service  *safe' /tmp/check.txt"

"$CTL" pin php-fpm-seed.service >/dev/null
fcgi 127.0.0.1:8888 hello.php >/dev/null
sleep 9
pinned=$(jfield "j['pinned']" show php-fpm-seed.service)
check "ctl-pin" "pinned php-fpm-seed is $(state php-fpm-seed.service) 9 s after its last request (idle-timeout 6s), pinned=$pinned" \
  bash -c "test '$(state php-fpm-seed.service)' = active && test '$pinned' = True"
"$CTL" unpin php-fpm-seed.service >/dev/null
if wait_state php-fpm-seed.service inactive 20; then pass "ctl-unpin: stopped once unpinned"; else fail "ctl-unpin: still $(state php-fpm-seed.service)"; fi

fcgi /run/php/alias.sock hello.php >/dev/null
t=$(now)
msg=$("$CTL" stop php-fpm@alias.service)
rc=$?
wait_state php-fpm@alias.service inactive 10
check "ctl-stop" "exit $rc, '$msg', php-fpm@alias $(state php-fpm@alias.service) $(since "$t")s later (idle-timeout not reached)" \
  bash -c "(( $rc == 0 )) && test '$(state php-fpm@alias.service)' = inactive"
"$CTL" stop php-fpm@naive.service 2>/tmp/refused.txt
rc=$?
check "ctl-stop-refused" "exit $rc: $(cut -c1-100 /tmp/refused.txt)" \
  bash -c "(( $rc == 1 )) && grep -q unsafe /tmp/refused.txt && test '$(state php-fpm@naive.service)' = active"
"$CTL" show nope.service 2>/tmp/unknown.txt
rc=$?
check "ctl-unknown-pool" "exit $rc: $(cat /tmp/unknown.txt)" test "$rc" -eq 4
"$CTL" --no-legend list >/tmp/list.txt
check "ctl-list" "$(tr '\n' ' ' </tmp/list.txt)" bash -c "test \$(wc -l </tmp/list.txt) -eq 5 && ! grep -q POOL /tmp/list.txt"

# Garbage on the control socket and the metrics endpoint: an error reply or a closed connection, never a disturbed
# daemon.
python3 $lib/control_garbage.py >/tmp/garbage.txt 2>&1
check "control-garbage" "$(grep -c '^ok' /tmp/garbage.txt) answered as expected; $(grep -v '^ok' /tmp/garbage.txt | tr '\n' '|' | cut -c1-400)" \
  grep -q '^all answered as expected' /tmp/garbage.txt
check "control-survives" "after the garbage: $("$CTL" --no-legend list | wc -l) pools listed, idlepoold $(state idlepoold)" \
  bash -c "$CTL list >/dev/null && test '$(state idlepoold)' = active"
systemctl stop idlepoold
"$CTL" status 2>/tmp/notrunning.txt
rc=$?
check "ctl-not-running" "exit $rc: $(cat /tmp/notrunning.txt)" test "$rc" -eq 3
systemctl start idlepoold

# ---- the loop never waits for systemd: idlepoolctl is answered while many units are discovered ----
mkdir -p /run/idlepool-disc
disc_units=${IDLEPOOL_E2E_DISCOVER_UNITS:-240}
systemctl start $(for ((i = 1; i <= disc_units; i++)); do echo "disc@$i.socket"; done)
sed -i '1i unit-pattern = disc@*.service' /etc/idlepool/idlepool.conf  # global settings come before any [pool]
systemctl restart --no-block idlepoold
answered=0 slowest=0 slowest_list=0 seen_discovering=0 d=0 done_n=0 total_n=0 first_done=-1
deadline=$((SECONDS + 120))
while ((SECONDS < deadline)); do
  t=$(now)
  "$CTL" --json=short status >/tmp/disc.json 2>/dev/null || { sleep 0.1; continue; }
  took=$(since "$t")
  read -r d n_done n_total < <(python3 -c 'import json,sys; j=json.load(sys.stdin)["daemon"]; print(int(j["discovering"]), j["discovery_done"], j["discovery_total"])' </tmp/disc.json)
  ((d == 1 && n_total > 0)) || { ((seen_discovering > 0)) && break; sleep 0.1; continue; }
  seen_discovering=$((seen_discovering + 1))
  done_n=$n_done total_n=$n_total
  ((first_done < 0)) && first_done=$n_done
  if ((answered == 0)); then  # one list too, timed; more would only take samples away from status
    t=$(now)
    "$CTL" list >/dev/null
    slowest_list=$(since "$t")
  fi
  answered=$((answered + 1))
  slowest=$(awk -v a="$slowest" -v b="$took" 'BEGIN { print (b > a ? b : a) }')
done
# What is asserted: idlepoolctl is answered while discovery is under way (the daemon says so in the answer); a loop
# that waited for systemd would answer only after it. How many answers fit in the discovery depends on the machine's
# speed (one run beside another guest got a single one, at 0 of 125 read: the loop answered while its first calls to
# PID 1 were in flight), so one is enough, and 240 units keep the discovery several idlepoolctl round trips long. The
# times are printed (a loaded 2-core host running two emulated guests took 1.5 s); bench/ measures them.
check "answers-while-discovering" "$answered status answers during a discovery of $disc_units units (read: $first_done at the first, $done_n of $total_n at the last); slowest ${slowest}s (list ${slowest_list}s; idlepoolctl's own start is ~0.3 s here)" \
  bash -c "(( $answered >= 1 ))"
sed -i '/^unit-pattern = disc@\*.service$/d' /etc/idlepool/idlepool.conf
systemctl stop $(for ((i = 1; i <= disc_units; i++)); do echo "disc@$i.socket"; done)
systemctl restart idlepoold


# The original setup made safe: nginx in front, acceptance tests (tests/e2e/guest/acceptance.sh).
. "$lib/acceptance.sh"
# Hostile tenants against the real daemon (tests/e2e/guest/hostile.sh).
. "$lib/hostile.sh"
# idle-timeout = adaptive and pre-warming, taught by a periodic client (tests/e2e/guest/rhythm.sh).
. "$lib/rhythm.sh"

((failures == 0)) || dump
echo "IDLEPOOL-E2E: $failures failed"
exit $((failures > 0))
