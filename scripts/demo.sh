#!/usr/bin/env bash
# The demo, as root on a fresh machine: installs what it needs, builds, boots a Debian 12 server in QEMU (systemd as
# PID 1, on this machine's root filesystem) and shows idlepool at work there, narrated: pools starting on the first
# request through nginx, idlepoolctl status as they go idle, the stop, the memory released, a request waking a pool
# with its wake latency, and a metrics excerpt. About two minutes. It ends cleanly and leaves nothing running.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
[[ $EUID -eq 0 ]] || { echo "scripts/demo.sh: run as root" >&2; exit 1; }
build=${IDLEPOOL_BUILD_DIR:-$top/build}

echo "== installing dependencies and building (quiet; a few minutes the first time)"
scripts/install-deps.sh >/dev/null
scripts/prepare-host.sh
cmake -S . -B "$build" -G Ninja >/dev/null
cmake --build "$build" -j "$(nproc)" >/dev/null
echo "== fetching Debian 12's kernel and booting a Debian server in QEMU (no KVM: about 15 s)"
scripts/fetch-kernels.sh bookworm >/dev/null

. tests/e2e/systemd-guest-lib.sh
. tests/e2e/systemd-tree.sh
work=$(mktemp -d /tmp/idlepool-demo.XXXXXX)
trap 'kill "$qemu" 2>/dev/null || true; rm -rf "$work"' EXIT
idlepool_e2e_tree "$work/tree" "$top" "$build" 10s
# Test fixtures, not for the demo: the vanishing socket, the Python service, churn1's 3 s timeout (the demo's pools all
# idle 10 s, so that the story can show them running before idlepoold stops them).
sed -i -e '/^unit = vanish.service$/d' -e '/^unit = pyhttp.service$/d' -e '/^\[pool php-fpm@churn1.service\]$/,+1d' \
  "$work/tree/etc/idlepool/idlepool.conf"
cp tests/e2e/guest/demo.sh "$work/tree/usr/local/lib/idlepool-e2e/demo.sh"
chmod +x "$work/tree/usr/local/lib/idlepool-e2e/demo.sh"
systemd_guest_tree "$work/tree" "env IDLEPOOLCTL=/usr/local/bin/idlepoolctl /usr/local/lib/idlepool-e2e/demo.sh"
touch "$work/serial.log"
systemd_guest_boot "$work/tree" "$work/serial.log" 600 "$top" "$build" &
qemu=$!
# The guest's narration, as it comes.
tail -n +1 -f --pid="$qemu" "$work/serial.log" | tr -d '\r' | sed -u -n -e 's/^DEMO: //p' -e 's/^DEMO|//p'
wait "$qemu" || true
if grep -q "IDLEPOOL-RESULT: rc=0" "$work/serial.log"; then
  echo "== the guest has powered off; nothing is left running"
else
  echo "== the demo did not finish; the guest's last lines:"
  tail -n 30 "$work/serial.log" | tr -d '\r'
  exit 1
fi
