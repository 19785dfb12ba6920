# shellcheck shell=bash
# idle-timeout = adaptive and prewarm = yes against the real daemon, inside the systemd guest: php-fpm@rhythm
# (adaptive-min 2s, adaptive-max 8s, adaptive-fallback 3s, adaptive-min-samples 3, adaptive-cold-start-cost 2s) and a
# client that calls it every 20 s. Sourced by scenarios.sh (same helpers). Every figure is the pool's own, counted from
# the events this script caused.
rhythm_unit=php-fpm@rhythm.service
rhythm_period=20
window_of() {  # UNIT: "SECONDS REASON SAMPLES"
  jfield "j['idle_window']['seconds'], j['idle_window']['reason'], j['idle_window']['samples']" show "$1" | tr -d "(),'"
}
# After a failed check: what the daemon learnt (silences, periods between visits) and did.
rhythm_story() {
  "$CTL" show "$rhythm_unit" | grep -E 'Idle window|Pre-warms|Wakes' | sed 's/^/  /'
  journalctl -u idlepoold --no-pager -o short-monotonic | grep -E 'rhythm.service: pre-warm|rhythm.service woke|rhythm.service stopped' |
    tail -n 30 | sed 's/^/  /'
}
systemctl start php-fpm@rhythm.socket
"$CTL" reload >/dev/null
wait_for_pool "$rhythm_unit"
read -r w0 why0 n0 < <(window_of "$rhythm_unit")
check "adaptive-fallback" "before any request: window ${w0}s ($why0, $n0 silences; adaptive-fallback 3s)" \
  bash -c "[[ '$w0 $why0' == '3 fallback' ]]"

# The client: a request every 20 s, on the clock (each one planned from the first, whatever the wakes cost). Between
# two requests the pool is stopped by its window, and the next request wakes it: that silence is learnt, ended exactly
# by the wake. After three the window is learnt (every silence is longer than adaptive-max: the shortest window wins);
# after six wakes (five regular periods between them) the pool is started before the next request.
rhythm_t0=$(now)
rhythm_wait() {  # K: waits for request K's time (K from 0)
  sleep "$(awk -v t="$rhythm_t0" -v k="$1" -v p="$rhythm_period" -v n="$(now)" \
    'BEGIN { d = t + k * p - n; printf "%.2f", (d > 0 ? d : 0) }')"
}
rhythm_request() {  # K: waits for request K's time, sends it; prints the body
  rhythm_wait "$1"
  fcgi /run/php/rhythm.sock hello.php
}
rhythm_ok=0 rhythm_learnt=""
for k in 0 1 2 3 4 5 6; do
  [[ -n $(rhythm_request "$k") ]] && rhythm_ok=$((rhythm_ok + 1))
  if ((k == 3)); then
    read -r w why n < <(window_of "$rhythm_unit")
    rhythm_learnt="$w $why $n"
  fi
  # Stopped by its window before the next request (a whole period away): that is what makes the next one a wake.
  wait_state "$rhythm_unit" inactive $((rhythm_period - 4)) ||
    fail "rhythm-stopped-$k: $rhythm_unit still $(state "$rhythm_unit") after request $k"
done
read -r stops0 wakes0 < <(counts "$rhythm_unit")
read -r w why n < <(window_of "$rhythm_unit")
check "adaptive-learns" "7 requests ${rhythm_period} s apart, $rhythm_ok answered; after 3 silences the window was '${rhythm_learnt}', after 6: ${w}s ($why, $n silences); $stops0 stops, $wakes0 wakes" \
  bash -c "[[ $rhythm_ok == 7 && '$rhythm_learnt' == '2 learnt 3' && '$w $why $n' == '2 learnt 6' && $stops0 == 7 && $wakes0 == 6 ]]"

# Each of those wakes as its visitor saw it (the connection's arrival to the first response, from the probe) and as
# the pool's start to its first accept: one of each per wake, the visitor's never shorter; the slowest of the hour.
read -r vn vsum ln lsum slowest < <(jfield "j['visitor_wake']['count'], j['visitor_wake']['sum_seconds'],
  j['wake_latency']['count'], j['wake_latency']['sum_seconds'], j['slowest_visitor_wake_seconds']" show "$rhythm_unit" |
  tr -d '(),')
visitor_row=$("$CTL" show "$rhythm_unit" | grep "Visitor's wake" | tr -s ' ' | tr -d "'")
check "visitor-wake" "$wakes0 wakes: visitor's wake $vn, ${vsum}s in all, slowest ${slowest}s; start to first accept $ln, ${lsum}s; '$visitor_row'" \
  bash -c "(( $vn == $wakes0 && $ln == $wakes0 )) && awk -v v=$vsum -v l=$lsum -v s=$slowest -v n=$vn 'BEGIN { exit !(v >= l && s >= v / n && s <= v) }' && [[ -n '$visitor_row' ]]"

# Five regular periods: the pool is started before the eighth request comes, on the client's own schedule (systemd's
# own date of the start's beginning, against the moment the client sent it, both CLOCK_MONOTONIC), and the request
# finds it warm (or still starting: a pre-warm still, never a wake).
rhythm_wait 7
sent=$(python3 -c 'import time; print(int(time.monotonic() * 1e6))')
body=$(fcgi /run/php/rhythm.sock hello.php)
started=$(systemctl show -P InactiveExitTimestampMonotonic "$rhythm_unit")
wait_until "[[ \$(jfield \"j['prewarm_hits']\" show $rhythm_unit) == 1 ]]"
read -r _ wakes1 < <(counts "$rhythm_unit")
read -r prewarms hits < <(jfield "j['prewarms'], j['prewarm_hits']" show "$rhythm_unit" | tr -d '(),')
ahead=$(awk -v a="$started" -v b="$sent" 'BEGIN { printf "%.1f", (b - a) / 1e6 }')
check "prewarm-before-request" "started ${ahead}s before request 7 was sent: '$body'; $prewarms pre-warms, $hits hits; wakes $wakes0 -> $wakes1; '$(journalctl -u idlepoold -o cat | grep -m1 "rhythm.service: pre-warm hit" | cut -c1-120)'" \
  bash -c "[[ -n '$body' && $prewarms == 1 && $hits == 1 && $wakes1 == $wakes0 ]] && (( $started > 0 && $started < $sent ))" ||
  rhythm_story
hits_metric=$(metric "idlepool_pool_prewarm_hits_total{pool=\"$rhythm_unit\"}")
window_metric=$(metric "idlepool_pool_idle_window_seconds{pool=\"$rhythm_unit\"}")
check "rhythm-metrics" "idlepool_pool_prewarm_hits_total $hits_metric, idlepool_pool_idle_window_seconds $window_metric" \
  bash -c "[[ '$hits_metric' == 1 && '$window_metric' =~ ^[0-9.e+]+$ ]]"

# What was learnt survives a restart (written at exit, read at start), in a file only root reads.
wait_state "$rhythm_unit" inactive 60
systemctl restart idlepoold
wait_for_pool "$rhythm_unit"
read -r w why n < <(window_of "$rhythm_unit")
state_mode=$(stat -c '%a %U' /var/lib/idlepool/rhythm.json 2>&1)
check "rhythm-kept" "after a restart: window ${w}s ($why, $n silences); /var/lib/idlepool/rhythm.json $state_mode" \
  bash -c "[[ '$w $why $n' == '2 learnt 7' && '$state_mode' == '600 root' ]]"

# A corrupt state file is ignored with a warning: the pools learn again, the daemon runs.
systemctl stop idlepoold
printf '{"version": 1, "pools": {"php-fpm@rhythm.service": {"silences": [1, 2' >/var/lib/idlepool/rhythm.json
systemctl start idlepoold
wait_for_pool "$rhythm_unit"
read -r w why n < <(window_of "$rhythm_unit")
warned=$(journalctl -u idlepoold -o cat --no-pager | grep -m1 'ignoring /var/lib/idlepool/rhythm.json' | cut -c1-150)
check "rhythm-corrupt-ignored" "'$warned'; idlepoold $(state idlepoold); window ${w}s ($why, $n silences)" \
  bash -c "[[ -n '$warned' && '$(state idlepoold)' == active && '$w $why $n' == '3 fallback 0' ]]"
systemctl stop php-fpm@rhythm.socket "$rhythm_unit"
