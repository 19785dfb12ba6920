#!/usr/bin/env bash
# Runs the probe's kernel tests (BUILD_DIR/tests/idlepool_kernel_tests, and idlepool-probe as a black box) inside
# QEMU guests booted with Debian's own stock kernels: Debian 12's 6.1 and Debian 13's 6.12. There the probe must pick
# the fentry tier and count exactly. A failed test, a guest that never starts or one that hangs fails the run.
#
# Usage: tests/qemu/run-kernel-matrix.sh BUILD_DIR [SUITE...]     (SUITE: bookworm, trixie; default both)
# IDLEPOOL_KEEP_GUEST_LOGS=1 keeps the serial logs.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
build=$(cd "${1:?usage: $0 BUILD_DIR [SUITE...]}" && pwd)
shift
suites=("$@")
((${#suites[@]})) || suites=(bookworm trixie)
timeout_s=${IDLEPOOL_GUEST_TIMEOUT:-900}
# shellcheck source=guest-lib.sh
. "$here/guest-lib.sh"

# What each kernel allows (tests/kernel/probe_test.cpp reads these).
declare -A tiers=([bookworm]=auto,syscall [trixie]=auto,sock,syscall)
declare -A unavailable=([bookworm]=sock [trixie]=)

work=$(mktemp -d /tmp/idlepool-qemu.XXXXXX)
if [[ -n ${IDLEPOOL_KEEP_GUEST_LOGS:-} ]]; then echo "guest logs kept in $work"; else trap 'rm -rf "$work"' EXIT; fi

guest_root "$work/root" "$build/tests/idlepool_kernel_tests" "$build/src/idlepool-probe" "$build/tests/ack_flood"
failed=0
while read -r suite version dir; do
  cat >"$work/command-$suite" <<CMD
export IDLEPOOL_TEST_TIERS=${tiers[$suite]}
export IDLEPOOL_EXPECT_AUTO_TIER=fentry
export IDLEPOOL_UNAVAILABLE_TIERS=${unavailable[$suite]}
/bin/idlepool_kernel_tests --gtest_color=no
CMD
  log=$work/$suite.log
  start=$SECONDS
  if ! guest_initrd "$work/root" "$dir" "$work/command-$suite" "$work/initrd-$suite.gz"; then
    failed=1
    continue
  fi
  guest_boot "$dir" "$work/initrd-$suite.gz" "$log" "$timeout_s"
  # The evidence: what the guest ran and how it ended.
  grep -aE "IDLEPOOL-GUEST|\[  (PASSED|FAILED) +\]|\[ info \]|Failure|got accepts" "$log" |
    sed -e 's/.*IDLEPOOL-GUEST/IDLEPOOL-GUEST/' -e "s/^/  [$suite] /" || true
  if guest_verdict "$log" "kernel $version ($suite)" "$timeout_s"; then
    echo "kernel $version ($suite): PASS in $((SECONDS - start))s"
  else
    failed=1
  fi
done < <("$top/scripts/fetch-kernels.sh" "${suites[@]}")
exit $failed
