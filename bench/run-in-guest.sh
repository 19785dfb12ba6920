#!/usr/bin/env bash
# Runs the probe overhead benchmark inside a QEMU guest with a Debian stock kernel, where the probe takes the fentry
# tier. php-fpm is not in the guest: only the read() and echo parts run there. Under emulation the absolute figures
# mean little; the ratios are what count.
#
# Usage: bench/run-in-guest.sh BUILD_DIR [SUITE] [-- BENCH ARGS...]   (SUITE default trixie: Debian 13, 6.12)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)
build=$(cd "${1:?usage: $0 BUILD_DIR [SUITE] [-- BENCH ARGS...]}" && pwd)
shift
suite=trixie
if [[ $# -gt 0 && $1 != "--" ]]; then suite=$1; shift; fi
[[ ${1:-} == "--" ]] && shift
args=("$@")
((${#args[@]})) || args=(--rounds 9 --reads 100000 --requests 2000 --parts read,echo --tiers auto,syscall)
# Guest time from executed instructions (-icount): wall time under emulation swings by 10% between runs, instruction
# counts do not, and instructions are what a hook adds.
export IDLEPOOL_QEMU_ARGS=${IDLEPOOL_QEMU_ARGS:-"-icount shift=0,sleep=off"}
# shellcheck source=../tests/qemu/guest-lib.sh
. "$top/tests/qemu/guest-lib.sh"

work=$(mktemp -d /tmp/idlepool-bench-guest.XXXXXX)
trap 'rm -rf "$work"' EXIT
read -r _ version dir < <("$top/scripts/fetch-kernels.sh" "$suite")
guest_root "$work/root" "$build/bench/idlepool_bench_probe"
echo "/bin/idlepool_bench_probe ${args[*]}" >"$work/command"
guest_initrd "$work/root" "$dir" "$work/command" "$work/initrd.gz"
echo "kernel $version ($suite): idlepool_bench_probe ${args[*]}"
guest_boot "$dir" "$work/initrd.gz" "$work/log" 1800
sed -n '/^idlepool probe overhead/,/IDLEPOOL-RESULT/p' "$work/log" | tr -d '\r' | grep -v "IDLEPOOL-RESULT"
guest_verdict "$work/log" "bench ($suite)" 1800
