#!/usr/bin/env bash
# The demo, as root on a fresh machine: installs what it needs, builds, then shows idlepool's kernel probe counting
# real traffic from nginx to two real php-fpm pools (the seed's pool on 127.0.0.1:8888 and a unix-socket pool),
# without any change to nginx or php-fpm. Ends cleanly and leaves nothing running.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
[[ $EUID -eq 0 ]] || { echo "scripts/demo.sh: run as root" >&2; exit 1; }

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "Installing dependencies and building (quiet)"
scripts/install-deps.sh >/dev/null
scripts/prepare-host.sh
cmake -S . -B build -G Ninja >/dev/null
cmake --build build -j "$(nproc)" >/dev/null
probe=$top/build/src/idlepool-probe

work=$(mktemp -d /tmp/idlepool-demo.XXXXXX)
chmod 755 "$work"  # nginx's workers (www-data) must reach the unix socket
pids=()
cleanup() {
  # The newest first: the probe prints its last report while the pools still listen.
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do kill "${pids[i]}" 2>/dev/null && wait "${pids[i]}" 2>/dev/null || true; done
  [[ -f $work/nginx.pid ]] && kill "$(cat "$work/nginx.pid")" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

say "Starting two php-fpm pools (pm = ondemand) and nginx in front of them"
mkdir -p "$work/www"
echo '<?php echo "hello from pool ", $_SERVER["POOL"], "\n";' >"$work/www/hello.php"
start_pool() {
  local name=$1 listen=$2
  cat >"$work/$name.conf" <<CONF
[global]
pid = $work/$name.pid
error_log = $work/$name.log
daemonize = no
[$name]
listen = $listen
listen.mode = 0666
pm = ondemand
pm.max_children = 4
pm.process_idle_timeout = 5s
env[POOL] = $name
CONF
  /usr/sbin/php-fpm8.2 --nodaemonize --allow-to-run-as-root -n --fpm-config "$work/$name.conf" &
  pids+=($!)
}
start_pool tcp-pool 127.0.0.1:8888
start_pool unix-pool "$work/unix-pool.sock"
cat >"$work/nginx.conf" <<CONF
daemon on;
pid $work/nginx.pid;
error_log $work/nginx-error.log;
events {}
http {
  access_log off;
  upstream unix_pool { server unix:$work/unix-pool.sock; keepalive 4; }
  server {
    listen 127.0.0.1:8080;
    root $work/www;
    location /tcp/ {
      fastcgi_pass 127.0.0.1:8888;
      include /etc/nginx/fastcgi_params;
      fastcgi_param SCRIPT_FILENAME $work/www/hello.php;
    }
    location /unix/ {
      fastcgi_pass unix_pool;
      fastcgi_keep_conn on;
      include /etc/nginx/fastcgi_params;
      fastcgi_param SCRIPT_FILENAME $work/www/hello.php;
    }
  }
}
CONF
for _ in $(seq 50); do [[ -S $work/unix-pool.sock ]] && ss -ltn | grep -q 127.0.0.1:8888 && break; sleep 0.1; done
nginx -c "$work/nginx.conf"
ps -o pid,args -C php-fpm8.2 | sed 's/^/  /'

say "Loading the probe and registering both pools' listening sockets (found by address; no fd needed)"
"$probe" --interval 3 --duration 14 127.0.0.1:8888 "$work/unix-pool.sock" &
pids+=($!)
sleep 1

say "Traffic: 5 requests to the TCP pool, 8 to the unix pool over kept-alive FastCGI connections"
for i in 1 2 3 4 5; do curl -fsS http://127.0.0.1:8080/tcp/ | sed 's/^/  curl: /'; done
for i in $(seq 8); do curl -fsS http://127.0.0.1:8080/unix/ >/dev/null; done
echo "  curl: 8 x hello from pool unix-pool"
echo "  (nginx keeps its unix connection open: 8 requests on few accepted connections, each counted)"

say "Watching: php-fpm's ondemand workers exit after 5 s idle; the master stays. That idle master is what idlepoold will stop."
wait "${pids[-1]}"
say "Done. Next: idlepoold turns these counts into stop decisions (see README)."
