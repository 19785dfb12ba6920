# Shared by the end-to-end runner and the demo (source it): the files a systemd guest needs for idlepool's real
# setup: this project's units (dist/) with the binaries from BUILD, php-fpm pools behind socket units, nginx in
# front, idlepoold's configuration, the PHP scripts and the guest-side scripts.
#   php-fpm@alias  unix socket, the stop-safe template (listens on the alias name)
#   php-fpm@churn1, php-fpm@churn2  the same, with a 3 s idle timeout (churn tests)
#   php-fpm@kawait, php-fpm@kaclose  the same, behind nginx's upstream keepalive (keepalive_timeout 15s), 3 s idle
#                  timeout; keepalive-connections = wait (the default) and close
#   php-fpm@naive  unix socket, php-fpm listening on the socket unit's own path (must be refused)
#   php-fpm-seed   TCP 127.0.0.1:8888 as in the original write-up, named explicitly in the configuration
#   php-fpm@rhythm the stop-safe template with idle-timeout = adaptive and prewarm = yes (a periodic client teaches it)
#   php-fpm@stall  the stop-safe template, its master made to miss one connection's edge when the test arms it
#                  (tests/support/miss_accept_edge.c): php-fpm's ondemand stall (php bug #69724), every time
#   pyhttp         a Python HTTP server behind pyhttp.socket (TCP 127.0.0.1:8090): a service of the generic kind
#   disc@N         (started only by the test that needs them) many socket-activated units, to discover
#   vanish         a service that deletes its socket path when it stops
#   nginx-e2e      nginx on 127.0.0.1:80: /seed/ /alias/ /churn1/ /churn2/, /keep/ over a kept-alive connection, and
#                  /direct/ /proxied/ (127.0.0.1:9101 and :9102, which only the benchmarks set up)

# idlepool_e2e_tree TREE TOP BUILD IDLE_TIMEOUT
idlepool_e2e_tree() {
  local tree=$1 top=$2 build=$3 idle=$4 here units
  here=$top/tests/e2e
units=$tree/etc/systemd/system
mkdir -p "$units" "$tree/etc/idlepool" "$tree/etc/php/8.2/fpm/idlepool" "$tree/srv/idlepool" \
  "$tree/usr/local/lib/idlepool-e2e"

# What this project ships, installed as an operator would: the binaries into /usr/local (so the hardened unit, with
# its private /tmp, finds them wherever the build tree is) and the units into /etc/systemd/system.
install -D -m 0755 "$build/src/idlepoold" "$tree/usr/local/sbin/idlepoold"
install -D -m 0755 "$build/src/idlepool-probe" "$tree/usr/local/sbin/idlepool-probe"
install -D -m 0755 "$build/src/idlepoolctl" "$tree/usr/local/bin/idlepoolctl"
cp "$top/dist/systemd/php-fpm@.socket" "$top/dist/systemd/php-fpm@.service" "$units/"
sed "s|@SBINDIR@|/usr/local/sbin|" "$top/dist/systemd/idlepoold.service" >"$units/idlepoold.service"
# The original write-up's pool: TCP 127.0.0.1:8888 (no unlink hazard for TCP).
cat >"$units/php-fpm-seed.socket" <<'UNIT'
[Socket]
ListenStream=127.0.0.1:8888
UNIT
cat >"$units/php-fpm-seed.service" <<'UNIT'
[Unit]
Requires=php-fpm-seed.socket
After=php-fpm-seed.socket
[Service]
Type=notify
ExecStart=/usr/sbin/php-fpm8.2 --nodaemonize --fpm-config /etc/php/8.2/fpm/idlepool/seed.conf
Environment=FPM_SOCKETS=127.0.0.1:8888=3
KillSignal=SIGQUIT
UNIT
# The naive pool: php-fpm listens on the socket unit's own path (FPM_SOCKETS names that path), as most guides do.
mkdir -p "$units/php-fpm@naive.service.d"
cat >"$units/php-fpm@naive.service.d/naive.conf" <<'UNIT'
[Service]
Environment=FPM_SOCKETS=/run/php/naive.sock=3
UNIT
# A service that removes its socket unit's path when it stops (as php-fpm does with a naive listen): idlepool
# cannot see that coming, so it must notice after the stop, restore the socket and never stop it again.
cat >"$units/vanish.socket" <<'UNIT'
[Socket]
ListenStream=/run/idlepool-vanish.sock
UNIT
cat >"$units/vanish.service" <<'UNIT'
[Unit]
Requires=vanish.socket
After=vanish.socket
[Service]
ExecStart=/usr/bin/python3 -c 'import socket; s = socket.socket(fileno=3)\nwhile True: s.accept()[0].close()'
ExecStopPost=/bin/rm -f /run/idlepool-vanish.sock
UNIT
pool_conf() {  # NAME LISTEN
  cat >"$tree/etc/php/8.2/fpm/idlepool/$1.conf" <<CONF
[global]
error_log = syslog
syslog.ident = php-fpm-$1
process_control_timeout = 20s
[$1]
user = www-data
group = www-data
listen = $2
pm = ondemand
pm.max_children = 4
pm.process_idle_timeout = 3s
CONF
}
pool_conf alias /run/php/alias.sock.inherited
pool_conf churn1 /run/php/churn1.sock.inherited
pool_conf churn2 /run/php/churn2.sock.inherited
pool_conf kawait /run/php/kawait.sock.inherited
pool_conf kaclose /run/php/kaclose.sock.inherited
pool_conf naive /run/php/naive.sock
pool_conf seed 127.0.0.1:8888
pool_conf stall /run/php/stall.sock.inherited
pool_conf rhythm /run/php/rhythm.sock.inherited
sed -i 's/^pm.process_idle_timeout = .*/pm.process_idle_timeout = 1s/' "$tree/etc/php/8.2/fpm/idlepool/stall.conf"
install -m 0755 "$build/tests/miss_accept_edge.so" "$tree/usr/local/lib/idlepool-e2e/miss_accept_edge.so"
mkdir -p "$units/php-fpm@stall.service.d"
cat >"$units/php-fpm@stall.service.d/miss-edge.conf" <<'UNIT'
[Service]
Environment=LD_PRELOAD=/usr/local/lib/idlepool-e2e/miss_accept_edge.so IDLEPOOL_MISS_DIR=/run/idlepool-stall
UNIT
# A service of another kind: a Python HTTP server on the socket systemd passes (fd 3).
cat >"$tree/usr/local/lib/idlepool-e2e/pyhttp.py" <<'PY'
import http.server, socket, socketserver
class Hello(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"hello from python\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
server = Server(("127.0.0.1", 8090), Hello, bind_and_activate=False)
server.socket = socket.socket(fileno=3)
server.serve_forever()
PY
cat >"$units/pyhttp.socket" <<'UNIT'
[Socket]
ListenStream=127.0.0.1:8090
UNIT
cat >"$units/pyhttp.service" <<'UNIT'
[Unit]
Requires=pyhttp.socket
After=pyhttp.socket
[Service]
ExecStart=/usr/bin/python3 /usr/local/lib/idlepool-e2e/pyhttp.py
UNIT
# Many units to discover (the test starts as many of them as it wants).
cat >"$units/disc@.socket" <<'UNIT'
[Socket]
ListenStream=/run/idlepool-disc/%i.sock
UNIT
cat >"$units/disc@.service" <<'UNIT'
[Service]
ExecStart=/usr/bin/python3 -c 'import socket, time; s = socket.socket(fileno=3); time.sleep(1e9)'
UNIT
cat >"$tree/etc/idlepool/idlepool.conf" <<CONF
idle-timeout = $idle
min-uptime = 2s
unit-pattern = php*-fpm@*.service
unit = php-fpm-seed.service
unit = vanish.service
unit = pyhttp.service
max-stops-per-second = 5
stall-timeout = 2s
log-level = debug
# For php-fpm@rhythm (idle-timeout = adaptive): a short history and short bounds, so that a client every 20 s teaches it.
adaptive-fallback = 3s
adaptive-min-samples = 3
adaptive-cold-start-cost = 2s

[pool php-fpm@churn1.service]
idle-timeout = 3s
[pool php-fpm@churn2.service]
idle-timeout = 3s
[pool php-fpm@kawait.service]
idle-timeout = 3s
[pool php-fpm@kaclose.service]
idle-timeout = 3s
keepalive-connections = close
[pool php-fpm@stall.service]
idle-timeout = 60s
[pool php-fpm@rhythm.service]
idle-timeout = adaptive
adaptive-min = 2s
adaptive-max = 8s
prewarm = yes
CONF
# nginx in front, as in the original setup: fastcgi_pass to each pool; /keep/ keeps its FastCGI connection open.
mkdir -p "$tree/etc/idlepool-e2e"
{
  echo "user www-data; worker_processes 1; pid /run/nginx-e2e.pid; error_log /run/nginx-e2e-error.log;"
  echo "events {}"
  echo "http { access_log off;"
  echo "  upstream alias_keep { server unix:/run/php/alias.sock; keepalive 2; }"
  for ka in kawait kaclose; do
    echo "  upstream ${ka}_keep { server unix:/run/php/$ka.sock; keepalive 4; keepalive_timeout 15s; }"
  done
  echo "  server { listen 127.0.0.1:80;"
  for loc in seed:127.0.0.1:8888 alias:unix:/run/php/alias.sock churn1:unix:/run/php/churn1.sock \
    churn2:unix:/run/php/churn2.sock keep:alias_keep kawait:kawait_keep kaclose:kaclose_keep direct:127.0.0.1:9101 \
    proxied:127.0.0.1:9102; do
    name=${loc%%:*} pass=${loc#*:}
    extra=""
    [[ $name == keep || $name == ka* ]] && extra="fastcgi_keep_conn on;"
    echo "    location ~ ^/$name/(.+\.php)\$ { fastcgi_pass $pass; $extra include /etc/nginx/fastcgi_params;"
    echo "      fastcgi_param SCRIPT_FILENAME /srv/idlepool/\$1; fastcgi_read_timeout 120s; }"
  done
  echo "  }"
  echo "}"
} >"$tree/etc/idlepool-e2e/nginx.conf"
cat >"$units/nginx-e2e.service" <<'UNIT'
[Service]
ExecStart=/usr/sbin/nginx -c /etc/idlepool-e2e/nginx.conf -g 'daemon off;'
UNIT
cat >"$tree/srv/idlepool/hello.php" <<'PHP'
<?php echo "hello from pid ", getmypid(), "\n";
PHP
cat >"$tree/srv/idlepool/slow.php" <<'PHP'
<?php $s = (int)($_GET["s"] ?? 10); sleep($s); echo "slept $s\n";
PHP
cp "$here/guest/scenarios.sh" "$here/guest/acceptance.sh" "$here/guest/hostile.sh" "$here/guest/rhythm.sh" "$here/guest/check_status.py" \
  "$here/guest/control_garbage.py" "$tree/usr/local/lib/idlepool-e2e/"
install -m 0755 "$build/tests/ack_flood" "$tree/usr/local/lib/idlepool-e2e/ack_flood"
chmod +x "$tree/usr/local/lib/idlepool-e2e/"*

}
