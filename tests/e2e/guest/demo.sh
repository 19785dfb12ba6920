#!/bin/bash
# The demo, inside the systemd guest (scripts/demo.sh boots it): narrated for a newcomer. Every line this prints is
# shown on the host as it comes.
set -u
CTL=${IDLEPOOLCTL:?}
say() { printf '\nDEMO: \033[1m%s\033[0m\n' "$*"; }
show() { sed 's/^/DEMO|   /'; }
state() { systemctl show -p ActiveState --value "$1"; }
masters() { pgrep -fc 'php-fpm: master process' || true; }
metric() { curl -fsS http://127.0.0.1:10071/metrics | awk -v s="$1" '$1 == s {print $2}'; }
pools="php-fpm@alias.service php-fpm@churn1.service php-fpm-seed.service"

say "A Debian 12 server (systemd $(systemctl --version | head -n1 | cut -d' ' -f2), kernel $(uname -r)) booted in QEMU."
say "nginx on 127.0.0.1:80 in front of php-fpm pools behind systemd socket units, as in the original write-up:"
{
  echo "/seed/   -> php-fpm-seed   (TCP 127.0.0.1:8888)"
  echo "/alias/  -> php-fpm@alias  (unix /run/php/alias.sock, the shipped stop-safe template)"
  echo "/churn1/ -> php-fpm@churn1 (unix /run/php/churn1.sock, same template)"
  echo "php-fpm@naive listens on its socket unit's own path: a pool that could never wake again after a stop"
} | show
systemctl start php-fpm@alias.socket php-fpm@churn1.socket php-fpm@naive.socket php-fpm-seed.socket nginx-e2e.service
systemctl start idlepoold.service
say "idlepoold runs as the shipped, hardened unit. No pool runs yet: $(masters) php-fpm masters."
"$CTL" status | show

say "The first request to each pool starts it (socket activation):"
for path in /seed/hello.php /alias/hello.php /churn1/hello.php; do
  t=$(date +%s.%N)
  body=$(curl -fsS "http://127.0.0.1$path")
  echo "GET $path -> '$body' in $(awk -v t="$t" -v n="$(date +%s.%N)" 'BEGIN { printf "%.2f", n - t }')s" | show
done
fpm_sock=/run/php/naive.sock
SCRIPT_FILENAME=/srv/idlepool/hello.php REQUEST_METHOD=GET cgi-fcgi -bind -connect $fpm_sock >/dev/null 2>&1
# Told as it happens, on any machine: each step waits for the state it describes.
running() {  # all of $pools active, and idlepoold reading their memory
  for p in $pools; do
    [[ $(state "$p") == active ]] || return 1
    [[ -n $(metric "idlepool_pool_memory_bytes{pool=\"$p\"}") ]] || return 1
  done
}
deadline=$((SECONDS + 60))
until running || ((SECONDS > deadline)); do sleep 0.3; done
say "$(masters) php-fpm masters run now. php-fpm's ondemand workers exit after 3 s idle; the masters would stay forever."
say "idlepoolctl status while they run (idle-timeout 10 s):"
"$CTL" status | show
mem=0
for p in $pools; do
  m=$(metric "idlepool_pool_memory_bytes{pool=\"$p\"}")
  mem=$(awk -v a="$mem" -v b="${m:-0}" 'BEGIN { print a + b }')
done
say "Their cgroups hold $(awk -v m="$mem" 'BEGIN { printf "%.1f", m / 1048576 }') MiB now. Nobody sends them a request any more:"
deadline=$((SECONDS + 90))
for p in $pools; do
  until [[ $(state "$p") == inactive ]] || ((SECONDS > deadline)); do sleep 0.3; done
done
say "idlepoold stopped them when idle, nothing in flight:"
journalctl -u idlepoold -o cat --no-pager | grep -E '^(stopping|.* stopped \(idle)' | show
released=$(metric idlepool_memory_released_bytes_total)
say "Memory released: $(awk -v m="${released:-0}" 'BEGIN { printf "%.1f", m / 1048576 }') MiB. php-fpm masters left: $(masters) (the naive pool, which idlepoold refuses to stop)."
"$CTL" status | show
say "The socket units still listen. A request to the stopped alias pool:"
t=$(date +%s.%N)
body=$(curl -fsS http://127.0.0.1/alias/hello.php)
echo "GET /alias/hello.php -> '$body' in $(awk -v t="$t" -v n="$(date +%s.%N)" 'BEGIN { printf "%.2f", n - t }')s (cold start under emulation)" | show
say "Wake latency, from the pool's start to its first request, as measured by idlepoold:"
curl -fsS http://127.0.0.1:10071/metrics | grep -E '^idlepool_pool_wake_latency_seconds_(sum|count)\{pool="php-fpm@alias' | show
say "Why the naive pool is never stopped (idlepoolctl check):"
"$CTL" check | show
say "A metrics excerpt (http://127.0.0.1:10071/metrics):"
curl -fsS http://127.0.0.1:10071/metrics | grep -E '^idlepool_pool_(stops_total|wakes_total|requests_total|memory_released_bytes_total)\{pool="php-fpm@alias' | show
say "Done: the guest powers off and nothing is left running."
