#!/bin/bash
# Runs inside the systemd guest (bench/run-systemd-bench.sh boots it): what idlepool costs and what it saves, on a
# real Debian server. Prints "BENCH: ..." lines (figures) for the host to collect. Parts (BENCH_PARTS): memory,
# reaction, wake, app, bus, discovery, heap, scale (run in that order). Under emulation absolute times are slow; ratios and
# memory are what count.
set -u
parts=${BENCH_PARTS:-memory scale reaction wake}
CTL=/usr/local/bin/idlepoolctl
say() { echo "BENCH: $*"; }
state() { systemctl show -p ActiveState --value "$1"; }
mono() { python3 -c 'import time; print(f"{time.monotonic():.6f}")'; }
metric() { curl -fsS http://127.0.0.1:10071/metrics | awk -v s="$1" '$1 == s {print $2}'; }
fcgi() { SCRIPT_FILENAME=/srv/idlepool/$2 REQUEST_METHOD=GET timeout 60 cgi-fcgi -bind -connect "$1" >/dev/null 2>&1; }
median() { sort -g | awk '{ a[NR] = $1 } END { if (NR == 0) { print "n/a"; exit } print (NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2) }'; }
# Sum of Pss and Rss (kB) of every process in the cgroups of php-fpm@memN for N in $1..$2.
pool_memory() {
  local pss=0 rss=0 procs=0 pid cg
  for ((i = $1; i <= $2; i++)); do
    cg="/sys/fs/cgroup/system.slice/system-php\\x2dfpm.slice/php-fpm@mem$i.service/cgroup.procs"
    [[ -r $cg ]] || continue
    for pid in $(cat "$cg"); do
      read -r p r < <(awk '/^Pss:/ {p = $2} /^Rss:/ {r = $2} END {print p + 0, r + 0}' "/proc/$pid/smaps_rollup" 2>/dev/null)
      pss=$((pss + ${p:-0}))
      rss=$((rss + ${r:-0}))
      procs=$((procs + 1))
    done
  done
  echo "$pss $rss $procs"
}
daemon_memory() {
  local pid
  pid=$(systemctl show -p MainPID --value idlepoold)
  awk '/^Pss:/ {p = $2} /^Rss:/ {r = $2} END {print p + 0, r + 0}' "/proc/$pid/smaps_rollup"
}
# PID: RSS split into private memory (anonymous: heap, stacks) and mapped files (the binary and shared libraries,
# shared with every other process using them), and PSS, which charges shared pages by their sharers.
memory_split() {
  awk '/^RssAnon/ {a = $2} /^RssFile/ {f = $2} /^RssShmem/ {s = $2} END {printf "anonymous %.1f MiB, files %.1f MiB, shared memory %.1f MiB", a / 1024, f / 1024, s / 1024}' "/proc/$1/status"
  awk '/^Pss:/ {printf ", PSS %.1f MiB", $2 / 1024}' "/proc/$1/smaps_rollup"
  # The largest mappings, by what they hold resident.
  awk '/^[0-9a-f]+-[0-9a-f]+ / {name = ($6 == "" ? "[anon]" : $6)} /^Rss:/ {rss[name] += $2} END {for (n in rss) if (rss[n] >= 256) printf "%d %s\n", rss[n], n}' "/proc/$1/smaps" |
    sort -rn | head -n 8 | awk '{sub(".*/", "", $2); printf "%s%s %.1f", (NR == 1 ? "; largest: " : ", "), $2, $1 / 1024} END {print " MiB"}'
}
running_pools() { systemctl list-units --state=active --no-legend 'php-fpm@mem*.service' | wc -l; }

if [[ " $parts " == *" memory "* ]]; then
  for n in 20 100; do
    # Without idlepool first: idlepoold is not running while the pools start and idle.
    cycle=$(date '+%Y-%m-%d %H:%M:%S')
    systemctl stop idlepoold
    systemctl start $(for ((i = 1; i <= n; i++)); do echo "php-fpm@mem$i.socket"; done)
    t=$(mono)
    for ((i = 1; i <= n; i++)); do echo "/run/php/mem$i.sock"; done | xargs -P 8 -I{} sh -c \
      'SCRIPT_FILENAME=/srv/idlepool/hello.php REQUEST_METHOD=GET cgi-fcgi -bind -connect {} >/dev/null 2>&1'
    started=$(running_pools)
    took=$(awk -v a="$t" -v b="$(mono)" 'BEGIN { printf "%.0f", b - a }')
    sleep 6  # ondemand workers exit after 3 s idle: what is left is what idle pools cost
    read -r pss rss procs < <(pool_memory 1 "$n")
    systemctl start idlepoold  # discovers the pools; their idle timeout is 30 s
    say "memory N=$n: $started pools started in $took s; idle, without idlepool: $procs php-fpm processes, PSS $((pss / 1024)) MiB, RSS $((rss / 1024)) MiB"
    deadline=$((SECONDS + 120))
    while ((SECONDS < deadline)) && (($(running_pools) > 0)); do sleep 1; done
    read -r pss2 rss2 procs2 < <(pool_memory 1 "$n")
    read -r dpss drss < <(daemon_memory)
    released=$(metric idlepool_memory_released_bytes_total)
    logged=$(journalctl -u idlepoold -o cat --no-pager --since "$cycle" | sed -n 's/.*php-fpm@mem[0-9]*.service stopped (idle; \([0-9]*\) KiB released).*/\1/p' | awk '{ n++; s += $1 } END { printf "%d stops, %.0f MiB", n, s / 1024 }')
    say "memory N=$n: idlepoold's journal: $logged released; the metric says ${released:-nothing (scrape failed: $(curl -sS -o /dev/null http://127.0.0.1:10071/metrics 2>&1))}"
    say "memory N=$n: after idlepool's stops: $(running_pools) pools running, $procs2 processes, PSS $((pss2 / 1024)) MiB, RSS $((rss2 / 1024)) MiB; idlepoold itself PSS $((dpss / 1024)) MiB, RSS $((drss / 1024)) MiB; saved (PSS) $(((pss - pss2 - dpss) / 1024)) MiB net of the daemon; cgroup memory.current released $(awk -v m="${released:-0}" 'BEGIN { printf "%.0f", m / 1048576 }') MiB"
    systemctl stop $(for ((i = 1; i <= n; i++)); do echo "php-fpm@mem$i.socket"; done) 2>/dev/null
  done
fi

if [[ " $parts " == *" reaction "* ]]; then
  # From a pool's deadline (its last activity as the probe saw it + idle timeout) to its stop having completed
  # (systemd's timestamp). The last activity comes from idlepoolctl (idle_seconds at the daemon's now).
  for i in 1 2 3 4 5 6; do
    fcgi "/run/php/react$i.sock" hello.php
    a=$(mono)
    idle=$("$CTL" --json=short show "php-fpm@react$i.service" | python3 -c 'import json,sys; print(json.load(sys.stdin)["idle_seconds"])')
    b=$(mono)
    awk -v a="$a" -v b="$b" -v i="$idle" 'BEGIN { printf "%.6f\n", (a + b) / 2 - i }' >"/tmp/react$i.t"
  done
  for i in 1 2 3 4 5 6; do
    deadline=$((SECONDS + 60))
    while ((SECONDS < deadline)) && [[ $(state "php-fpm@react$i.service") != inactive ]]; do sleep 0.2; done
    done_us=$(systemctl show -p InactiveEnterTimestampMonotonic --value "php-fpm@react$i.service")
    awk -v d="$done_us" -v t="$(cat "/tmp/react$i.t")" 'BEGIN { printf "%.3f\n", d / 1e6 - (t + 5) }'
  done >/tmp/reaction.txt
  say "reaction: deadline to stop completed, 6 pools (idle-timeout 5 s): median $(median </tmp/reaction.txt) s; all: $(tr '\n' ' ' </tmp/reaction.txt)"
  journalctl -u idlepoold -o cat --no-pager | grep 'php-fpm@react' |
    sed -n 's/.*decided \(.*\) \([0-9.]*\) ms after its process event/\2/p' >/tmp/decide.txt
  say "reaction: process event (worker or main exit) to decision, react pools: median $(median </tmp/decide.txt) ms over $(wc -l </tmp/decide.txt) events"
fi

if [[ " $parts " == *" wake "* ]]; then
  systemctl start nginx-e2e.service proxied-fpm.socket direct-fpm.service
  sleep 1
  url() { curl -sS -m 30 -o /dev/null -w '%{http_code} %{time_total}\n' "http://127.0.0.1$1"; }
  ok_median() { awk '$1 == 200 {print $2}' "$1" | median; }  # FILE: median time of the 200s
  bad() { awk '$1 != 200' "$1" | wc -l; }
  until_inactive() {  # UNIT: waits up to 30 s
    local end=$((SECONDS + 30))
    while ((SECONDS < end)) && [[ $(state "$1") != inactive ]]; do sleep 0.2; done
  }
  # Cold: a request to a stopped pool (stopped through idlepoolctl between requests). One start every 3 s at most:
  # systemd's default start limit is 5 in 10 s (idlepoold refuses the stop that would risk it).
  for i in $(seq 8); do
    sleep 3
    "$CTL" stop php-fpm@alias.service >/dev/null 2>&1 || echo "BENCH: wake: idlepoolctl stop: $("$CTL" stop php-fpm@alias.service 2>&1)" >&2
    until_inactive php-fpm@alias.service
    url /alias/hello.php
  done >/tmp/cold.txt
  say "wake: through nginx, first request to a stopped pool: median $(ok_median /tmp/cold.txt) s ($(bad /tmp/cold.txt) not 200)"
  # What idlepool adds to a warm request: the same requests with idlepoold stopped (the probe detaches with it),
  # in alternating rounds so that drift in the guest hits both sides alike.
  rps() { wrk -t1 -c4 -d10s "http://127.0.0.1$1" 2>&1 | awk '/Requests\/sec/ {print $2}'; }
  : >/tmp/warm.txt
  : >/tmp/warm-without.txt
  : >/tmp/rps.txt
  : >/tmp/rps-without.txt
  for round in 1 2 3; do
    url /alias/hello.php >/dev/null  # wakes the pool if it was stopped meanwhile
    for i in $(seq 20); do url /alias/hello.php; done >>/tmp/warm.txt
    rps /alias/hello.php >>/tmp/rps.txt
    systemctl stop idlepoold
    url /alias/hello.php >/dev/null
    for i in $(seq 20); do url /alias/hello.php; done >>/tmp/warm-without.txt
    rps /alias/hello.php >>/tmp/rps-without.txt
    systemctl start idlepoold
  done
  say "wake: warm request through nginx, 3 alternating rounds: with idlepoold median $(ok_median /tmp/warm.txt) s ($(bad /tmp/warm.txt) not 200), without $(ok_median /tmp/warm-without.txt) s ($(bad /tmp/warm-without.txt) not 200), ratio $(awk -v a="$(ok_median /tmp/warm.txt)" -v b="$(ok_median /tmp/warm-without.txt)" 'BEGIN { printf "%.3f", a / b }')"
  say "wake: wrk -t1 -c4 -d10s /alias/, 3 alternating rounds: with idlepoold $(tr '\n' ' ' </tmp/rps.txt)req/s (median $(median </tmp/rps.txt)), without $(tr '\n' ' ' </tmp/rps-without.txt)(median $(median </tmp/rps-without.txt)), ratio $(awk -v a="$(median </tmp/rps.txt)" -v b="$(median </tmp/rps-without.txt)" 'BEGIN { printf "%.3f", a / b }')"
  systemctl stop idlepoold
  for i in $(seq 8); do
    sleep 3
    systemctl stop php-fpm@alias.service
    until_inactive php-fpm@alias.service
    url /alias/hello.php
  done >/tmp/cold-without.txt
  systemctl start idlepoold
  say "wake: without idlepoold: first request to a stopped pool median $(ok_median /tmp/cold-without.txt) s ($(bad /tmp/cold-without.txt) not 200)"
  # systemd-socket-proxyd --exit-idle-time in front of a php-fpm pool, vs the same pool direct.
  for i in $(seq 40); do url /proxied/hello.php; done >/tmp/proxied.txt
  for i in $(seq 40); do url /direct/hello.php; done >/tmp/direct.txt
  say "wake: warm request through systemd-socket-proxyd: median $(ok_median /tmp/proxied.txt) s ($(bad /tmp/proxied.txt) not 200); the same pool direct: median $(ok_median /tmp/direct.txt) s ($(bad /tmp/direct.txt) not 200)"
  for target in direct proxied; do
    out=$(wrk -t1 -c4 -d15s "http://127.0.0.1/$target/hello.php" 2>&1)
    say "wake: wrk -t1 -c4 -d15s /$target/: $(echo "$out" | awk '/Requests\/sec/ {print $2}') req/s, latency $(echo "$out" | awk '/Latency/ {print $2}') (avg), $(echo "$out" | awk '/Non-2xx/ {n = $NF} END {print n + 0}') not 2xx"
  done
fi
if [[ " $parts " == *" app "* ]]; then
  # What a visitor of a real site waits for after idlepoold stopped its pool. The two pools serve the same
  # application; pma-fc keeps its compiled scripts in an opcache file cache, pma-nofc compiles them at every wake.
  systemctl start nginx-e2e.service
  install -d -m 0700 -o www-data /var/cache/idlepool/opcache/8.2/pma-fc
  page() { curl -sS -m 300 -o /tmp/app-page.html -w '%{http_code} %{time_total}\n' "http://127.0.0.1$1" &&
    grep -q '<title>phpMyAdmin' /tmp/app-page.html || echo "BENCH: app: $1 did not give phpMyAdmin's login page" >&2; }
  ok_median() { awk '$1 == 200 {print $2}' "$1" | median; }
  until_state() {  # UNIT STATE SECONDS
    local end=$((SECONDS + $3))
    while [[ $(state "$1") != "$2" ]]; do
      ((SECONDS < end)) || { echo "BENCH: app: $1 not $2 after $3 s" >&2; return 1; }
      sleep 0.2
    done
  }
  rounds=${BENCH_APP_ROUNDS:-7}
  page /pma-nofc/ >/dev/null
  page /pma-fc/ >/dev/null  # compiles the application once: its file cache is filled
  : >/tmp/app-warm.txt
  : >/tmp/app-cold-pma-nofc.txt
  : >/tmp/app-cold-pma-fc.txt
  : >/tmp/app-cold-by-hand.txt
  # Every round measures each kind once, in the same order, so that drift in the guest hits them alike; the wake
  # with idlepoold and the one without it are paired within a round.
  for r in $(seq "$rounds"); do
    page /pma-fc/ >/dev/null
    page /pma-fc/ >>/tmp/app-warm.txt
    for p in pma-nofc pma-fc; do  # each stopped by idlepoold (idle-timeout 4 s), then woken by one request
      # A missed stop still writes a line ("000"), so that the files stay one line a round for the pairing below.
      if until_state "php-fpm@$p.service" inactive 120; then page "/$p/"; else echo "000 0"; fi >>"/tmp/app-cold-$p.txt"
    done
    # The same wake with idlepoold not running at all (its probe detached with it): the pool stopped by hand.
    systemctl stop idlepoold
    sleep 3  # within systemd's start limit (5 in 10 s)
    systemctl stop php-fpm@pma-fc.service
    if until_state php-fpm@pma-fc.service inactive 60; then page /pma-fc/; else echo "000 0"; fi >>/tmp/app-cold-by-hand.txt
    systemctl start idlepoold
  done
  warm=$(ok_median /tmp/app-warm.txt) nofc=$(ok_median /tmp/app-cold-pma-nofc.txt) fc=$(ok_median /tmp/app-cold-pma-fc.txt)
  byhand=$(ok_median /tmp/app-cold-by-hand.txt)
  spread() { awk '$1 == 200 {print $2}' "$1" | sort -g | awk 'NR == 1 {lo = $1} {hi = $1} END {printf "%s-%s", lo, hi}'; }
  # Per round, the wake through idlepoold's stop over the one without idlepoold: median and quartiles.
  paste -d' ' /tmp/app-cold-pma-fc.txt /tmp/app-cold-by-hand.txt | awk '$1 == 200 && $3 == 200 {print $2 / $4}' |
    sort -g >/tmp/app-pairs.txt
  quartile() { awk -v q="$1" '{ a[NR] = $1 } END { if (!NR) { print "n/a"; exit } i = 1 + q * (NR - 1); j = int(i); printf "%.3f", a[j] + (i - j) * (a[j + 1 < NR ? j + 1 : NR] - a[j]) }' /tmp/app-pairs.txt; }
  say "app: phpMyAdmin's login page ($(find /var/cache/idlepool/opcache/8.2/pma-fc -name '*.php.bin' | wc -l) compiled scripts), $rounds rounds, medians (spread): warm $warm s ($(spread /tmp/app-warm.txt))"
  say "app: first request after idlepoold stopped the pool: without a file cache $nofc s ($(spread /tmp/app-cold-pma-nofc.txt)), with $fc s ($(spread /tmp/app-cold-pma-fc.txt))"
  say "app: first / warm: without a file cache $(awk -v a="$nofc" -v b="$warm" 'BEGIN { printf "%.2f", a / b }'), with $(awk -v a="$fc" -v b="$warm" 'BEGIN { printf "%.2f", a / b }'); the wake's extra (first - warm) is $(awk -v n="$nofc" -v f="$fc" -v w="$warm" 'BEGIN { printf "%.2f", (n - w) / (f - w) }')x smaller with the file cache"
  say "app: with the file cache, stopped by hand without idlepoold: first request $byhand s ($(spread /tmp/app-cold-by-hand.txt)); with idlepoold / without: $(awk -v a="$fc" -v b="$byhand" 'BEGIN { printf "%.3f", a / b }') (medians); per round $(quartile 0.5) (quartiles $(quartile 0.25)-$(quartile 0.75), $(wc -l </tmp/app-pairs.txt) pairs)"
  # How well the rounds resolve it: the per-round median's 95% interval (bootstrap, 5000 resamples, fixed seed).
  say "app: with idlepoold / without, per-round median's 95% interval: $(python3 -c '
import random, statistics, sys
r = [float(x) for x in open(sys.argv[1])]
if len(r) < 5: print("n/a (under 5 pairs)"); sys.exit()
g = random.Random(1)
m = sorted(statistics.median(g.choices(r, k=len(r))) for _ in range(5000))
print(f"{m[124]:.3f}-{m[4874]:.3f}")' /tmp/app-pairs.txt)"
  say "app: pairs (with / without, per round, in round order): $(paste -d' ' /tmp/app-cold-pma-fc.txt /tmp/app-cold-by-hand.txt | awk '$1 == 200 && $3 == 200 {printf "%.3f ", $2 / $4}')"
fi

if [[ " $parts " == *" bus "* ]]; then
  # Reading units from systemd, several ways (bench/bus_read_bench.cpp), on BENCH_BUS_UNITS socket-activated units.
  n=${BENCH_BUS_UNITS:-100}
  mkdir -p /run/bench
  systemctl start $(for ((i = 1; i <= n; i++)); do echo "bench@$i.socket"; done)
  "$BENCH_BUILD/bench/idlepool_bench_bus" --pattern 'bench@*.service' --rounds 3 2>&1 | sed 's/^/BENCH: bus: /'
fi

if [[ " $parts " == *" discovery "* ]]; then
  # Where discovery's time goes: idlepoold run by hand on the 1000 bench units, logging to a file, then logging to
  # the journal (a stream to journald, as under its unit); the service itself is stopped meanwhile.
  n=${BENCH_SCALE_POOLS:-1000}
  mkdir -p /run/bench
  systemctl start $(for ((i = 1; i <= n; i++)); do echo "bench@$i.socket"; done)
  systemctl stop idlepoold
  printf 'unit-pattern = bench@*.service\nmetrics-listen = off\ncontrol-socket = /run/bench-ctl.sock\n' >/tmp/disc.conf
  discover_once() {  # LABEL SINK: SINK is "file" or "journal"
    local t pid
    rm -f /tmp/disc.log
    t=$(mono)
    if [[ $2 == file ]]; then
      "$BENCH_BUILD/src/idlepoold" --config /tmp/disc.conf 2>/tmp/disc.log &
      pid=$!
    else
      "$BENCH_BUILD/src/idlepoold" --config /tmp/disc.conf 2>&1 | tee /tmp/disc.log | systemd-cat -t idlepoold-bench &
      pid=$!
    fi
    for ((k = 0; k < 6000; k++)); do grep -q 'ready:' /tmp/disc.log 2>/dev/null && break; sleep 0.1; done
    say "discovery, logging to the $2: ready after $(awk -v a="$t" -v b="$(mono)" 'BEGIN { printf "%.1f", b - a }') s; $(grep -a -o 'discovered .*' /tmp/disc.log | tail -n1); $(grep -a -o 'ready: .*' /tmp/disc.log)"
    pkill -TERM -x idlepoold
    wait "$pid" 2>/dev/null
  }
  discover_once "" file
  discover_once "" journal
  discover_once "" file
  systemctl start idlepoold
fi

if [[ " $parts " == *" heap "* ]]; then
  # What idlepoold's heap holds with the 1000 bench units discovered: its own configuration, run by hand as in the
  # scale part (the service stopped meanwhile). First glibc's account at READY (in use vs kept free), then
  # heaptrack's: the allocations still live when the daemon is killed at READY, by where they were made.
  n=${BENCH_SCALE_POOLS:-1000}
  mkdir -p /run/bench
  systemctl start $(for ((i = 1; i <= n; i++)); do echo "bench@$i.socket"; done)
  systemctl stop idlepoold
  # The service's settings, but a control socket of its own and no metrics port (its runtime directory went with it).
  { printf 'control-socket = /run/bench-heap.sock\nmetrics-listen = off\n'
    sed -e 's/^unit-pattern = .*/unit-pattern = bench@*.service/' -e '/^control-socket\|^metrics-listen/d' \
      /etc/idlepool/idlepool.conf; } >/tmp/heap.conf
  until_ready() {  # LOG SECONDS
    for ((k = 0; k < $2 * 10; k++)); do grep -q 'ready:' "$1" 2>/dev/null && return 0; sleep 0.1; done
    say "heap: idlepoold not ready after $2 s; its log ends:"
    tail -n 5 "$1" | sed 's/^/BENCH: heap:   /'
    return 1
  }
  "$BENCH_BUILD/src/idlepoold" --config /tmp/heap.conf 2>/tmp/heap.log &
  pid=$!
  if until_ready /tmp/heap.log 600; then
    sleep 2
    say "heap: by hand, READY: RSS $(awk '/^VmRSS/ {print $2}' /proc/$pid/status) kB: $(memory_split "$pid")"
    gdb -p "$pid" -batch -ex 'call (void)malloc_stats()' >/dev/null 2>&1
    grep -a -A3 '^Arena\|^Total' /tmp/heap.log | tr -s ' ' | sed 's/^/BENCH: heap: malloc_stats: /'
    gdb -p "$pid" -batch -ex 'call (int)malloc_trim(0)' >/dev/null 2>&1
    say "heap: after malloc_trim(0): RSS $(awk '/^VmRSS/ {print $2}' /proc/$pid/status) kB"
  fi
  kill -TERM "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  if command -v heaptrack >/dev/null; then
    rm -f /tmp/heap.log /tmp/idlepoold-heap.*
    heaptrack -o /tmp/idlepoold-heap "$BENCH_BUILD/src/idlepoold" --config /tmp/heap.conf 2>/tmp/heap.log >/dev/null &
    pid=$!
    if until_ready /tmp/heap.log 1800; then
      sleep 2
    fi
    pkill -KILL -x idlepoold
    wait "$pid" 2>/dev/null
    trace=$(ls /tmp/idlepoold-heap.* 2>/dev/null | head -n 1)
    # Live bytes by the innermost frame of idlepool's own code and the call it made (what holds the heap, by owner).
    heaptrack_print -f "$trace" --print-leaks 0 --print-peaks 0 --print-allocators 0 --print-temporary 0 \
      -F /tmp/heap-stacks.txt --flamegraph-cost-type leaked >/dev/null 2>&1
    awk '{ n = $NF; sub(/;? [0-9]+$/, ""); k = split($0, f, ";"); own = "(no idlepool frame)"; callee = f[k]
           for (i = k; i >= 1; i--) if (f[i] ~ /idlepool::/) { own = f[i]; callee = (i < k ? f[i + 1] : "(itself)"); break }
           key = substr(own, 1, 110) " -> " substr(callee, 1, 70); live[key] += n; total += n }
         END { printf "%d live bytes in all\n", total; for (k in live) printf "%d %s\n", live[k], k }' /tmp/heap-stacks.txt |
      sort -rn | head -n 40 | sed 's/^/BENCH: heap: live: /'
  fi
  systemctl start idlepoold
fi

# Last: it points idlepoold at the 1000 bench units.
if [[ " $parts " == *" scale "* ]]; then
  n=${BENCH_SCALE_POOLS:-1000}
  mkdir -p /run/bench
  t=$(mono)
  systemctl start $(for ((i = 1; i <= n; i++)); do echo "bench@$i.socket"; done)
  say "scale: $n socket units started in $(awk -v a="$t" -v b="$(mono)" 'BEGIN { printf "%.1f", b - a }') s"
  sed -i 's/^unit-pattern = .*/unit-pattern = bench@*.service/' /etc/idlepool/idlepool.conf
  systemctl stop idlepoold
  t=$(mono)
  systemctl start idlepoold  # Type=notify: returns when idlepoold is READY, i.e. every pool discovered and registered
  ready=$(awk -v a="$t" -v b="$(mono)" 'BEGIN { printf "%.1f", b - a }')
  pools=$("$CTL" --no-legend list | wc -l)
  pid=$(systemctl show -p MainPID --value idlepoold)
  rss=$(awk '/^VmRSS/ {print $2}' /proc/$pid/status)
  hwm=$(awk '/^VmHWM/ {print $2}' /proc/$pid/status)
  say "scale: $(journalctl -u idlepoold -o cat --no-pager | grep -a 'discovered .* new pools' | tail -n 1)"
  if [[ $pid == 0 ]]; then
    journalctl -u idlepoold -o cat --no-pager | tail -n 15 | sed 's/^/BENCH: scale: journal: /'
  fi
  say "scale: idlepoold READY with $pools pools in ${ready} s; RSS $((rss / 1024)).$(((rss % 1024) * 10 / 1024)) MiB (peak $((hwm / 1024)) MiB): $(memory_split "$pid")"
  # Idle: nothing happens for a minute. CPU time and wakeups (context switches) per thread.
  idle_minute() {  # LABEL
    local -A before
    local task tid now d total=0 cpu0 cpu1
    for task in /proc/$pid/task/*; do
      tid=${task##*/}
      before[$tid]=$(awk '/^voluntary_ctxt_switches|^nonvoluntary_ctxt_switches/ {s += $2} END {print s}' "$task/status")
    done
    cpu0=$(awk '{print $14 + $15}' /proc/$pid/stat)
    sleep 60
    cpu1=$(awk '{print $14 + $15}' /proc/$pid/stat)
    for task in /proc/$pid/task/*; do
      tid=${task##*/}
      now=$(awk '/^voluntary_ctxt_switches|^nonvoluntary_ctxt_switches/ {s += $2} END {print s}' "$task/status")
      d=$((now - ${before[$tid]:-0}))
      total=$((total + d))
      say "scale: $1, thread $tid ($(cat "$task/comm")): $d wakeups"
    done
    say "scale: $1 with $pools pools: $total wakeups in all, CPU $(((cpu1 - cpu0) * 10)) ms"
    # Which of the loop's sources woke it, over another minute with strace attached (its epoll tags: 1 signal,
    # 2 deadline timer, 3 systemd's bus, 4 process connector, 5 watchdog, 6/7 control socket/metrics listeners).
    timeout 60 strace -qq -p "$pid" -e trace=epoll_wait -o /tmp/strace.txt 2>/dev/null
    say "scale: $1, what woke the loop over a minute (epoll tag: count): $(grep -o 'u64=[0-9]*' /tmp/strace.txt | sort | uniq -c | awk '{sub("u64=", "", $2); printf "%s:%s ", $2, $1}')$(grep -c '= 0$' /tmp/strace.txt) timeouts"
  }
  idle_minute "idle minute, pools stopped"
  rss=$(awk '/^VmRSS/ {print $2}' /proc/$pid/status)
  say "scale: RSS after the idle minute $((rss / 1024)).$(((rss % 1024) * 10 / 1024)) MiB: $(memory_split "$pid")"
  # The same pools running (with no worker process: each is looked at every stall-timeout, 5 s), none due to stop.
  sed -i 's/^idle-timeout = .*/idle-timeout = 1h/' /etc/idlepool/idlepool.conf
  systemctl reload idlepoold
  systemctl start $(for ((i = 1; i <= n; i++)); do echo "bench@$i.service"; done)
  # Let it take in the starts first (each one a few unit changes to read): until it uses < 2% CPU over 10 s.
  t=$(mono)
  for ((k = 0; k < 60; k++)); do
    c0=$(awk '{print $14 + $15}' /proc/$pid/stat)
    sleep 10
    (($(awk '{print $14 + $15}' /proc/$pid/stat) - c0 < 20)) && break
  done
  say "scale: took in $n starts in $(awk -v a="$t" -v b="$(mono)" 'BEGIN { printf "%.0f", b - a }') s"
  idle_minute "idle minute, $n pools running"
  rss=$(awk '/^VmRSS/ {print $2}' /proc/$pid/status)
  say "scale: RSS with $n pools running $((rss / 1024)).$(((rss % 1024) * 10 / 1024)) MiB: $(memory_split "$pid")"
fi

exit 0
