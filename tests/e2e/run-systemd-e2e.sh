#!/usr/bin/env bash
# End-to-end tests against a real systemd: boots a QEMU guest with Debian 12's kernel and systemd as PID 1 on this
# host's root (tests/e2e/systemd-guest-lib.sh), where idlepoold runs as the service this project ships (dist/systemd,
# its hardening included) over real php-fpm pools behind socket units:
#   php-fpm@alias  unix socket, the stop-safe template (listens on the alias name)
#   php-fpm@naive  unix socket, php-fpm listening on the socket unit's own path (must be refused)
#   php-fpm-seed   TCP 127.0.0.1:8888 as in the original write-up, named explicitly in the configuration
# The guest runs tests/e2e/guest/scenarios.sh, which prints one IDLEPOOL-E2E line per check; this runner fails on a
# failed check, a guest that never boots, or a hang.
#
# Usage: tests/e2e/run-systemd-e2e.sh BUILD_DIR
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
build=$(cd "${1:?usage: $0 BUILD_DIR}" && pwd)
# A hang guard, not a speed check: alone a run takes ~6 min here, beside another emulated guest up to ~15.
timeout_s=${IDLEPOOL_E2E_TIMEOUT:-1500}
# shellcheck source=systemd-guest-lib.sh
. "$here/systemd-guest-lib.sh"

work=$(mktemp -d /tmp/idlepool-e2e.XXXXXX)
[[ -n ${IDLEPOOL_KEEP_GUEST_LOGS:-} ]] && echo "guest log kept in $work" || trap 'rm -rf "$work"' EXIT
tree=$work/tree
# shellcheck source=systemd-tree.sh
. "$here/systemd-tree.sh"
idlepool_e2e_tree "$tree" "$top" "$build" 6s
systemd_guest_tree "$tree" "env IDLEPOOLCTL=/usr/local/bin/idlepoolctl /usr/local/lib/idlepool-e2e/scenarios.sh"
start=$SECONDS
systemd_guest_boot "$tree" "$work/serial.log" "$timeout_s" "$top" "$build"
took=$((SECONDS - start))
grep -a -E "IDLEPOOL-(E2E|GUEST|RESULT)|^  " "$work/serial.log" | tr -d '\r' || true
if grep -q "IDLEPOOL-RESULT: rc=0" "$work/serial.log"; then
  echo "systemd end-to-end: PASS in ${took}s"
  exit 0
fi
if ! grep -q "IDLEPOOL-GUEST: driver started" "$work/serial.log"; then
  echo "systemd end-to-end: FAIL: the guest never reached its driver (${took}s); serial log tail:"
elif ! grep -q "IDLEPOOL-RESULT" "$work/serial.log"; then
  echo "systemd end-to-end: FAIL: no result within ${timeout_s}s (hang); serial log tail:"
else
  echo "systemd end-to-end: FAIL (${took}s); serial log tail:"
fi
tail -n 60 "$work/serial.log" | tr -d '\r'
exit 1
