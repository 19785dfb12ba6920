#!/usr/bin/env bash
# The whole test suite on a fresh machine, as root: installs what it needs, builds, and runs every test:
#   unit tests, kernel tests on this host's kernel (probe, process connector), php-fpm integration, the hardening of
#   the binaries; the same tests once more built with ASan and UBSan, and the fuzzers for a bounded time; the kernel
#   matrix (the probe's tests inside QEMU guests with Debian 12's and 13's stock kernels),
#   and the end-to-end tests of idlepoold against a real systemd (a QEMU guest with systemd as PID 1).
# Nothing here skips: a test that cannot run fails the suite.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
if [[ $EUID -ne 0 ]]; then
  echo "scripts/test.sh: run as root (the probe, the process connector and the QEMU guests need it)" >&2
  exit 1
fi
build=${IDLEPOOL_BUILD_DIR:-$top/build}
san_build=${IDLEPOOL_SAN_BUILD_DIR:-$top/build-san}
jobs=$(nproc)

step() { printf '\n==== %s (%s)\n' "$*" "$(date -u +%H:%M:%S)"; }

step "dependencies"
scripts/install-deps.sh
scripts/prepare-host.sh

step "format and layers"
scripts/check-format.sh
scripts/check-layers.sh

step "build"
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j "$jobs"

step "clang-tidy (the daemon, idlepoolctl, idlepool-probe)"
scripts/check-tidy.sh "$build"

step "unit, kernel, integration and hardening tests"
ctest --test-dir "$build" --output-on-failure

step "the same under ASan and UBSan (clang), and the fuzzers"
CC=clang CXX=clang++ cmake -S . -B "$san_build" -G Ninja -DIDLEPOOL_SANITIZE=ON >/dev/null
cmake --build "$san_build" -j "$jobs"
ctest --test-dir "$san_build" --output-on-failure -E '^fuzz_'
ctest --test-dir "$san_build" --output-on-failure -R '^fuzz_' -j "$jobs"

step "kernel matrix (QEMU: Debian 12 6.1, Debian 13 6.12)"
tests/qemu/run-kernel-matrix.sh "$build"

step "systemd end to end (QEMU: Debian 12, systemd as PID 1, idlepoold over real php-fpm pools)"
tests/e2e/run-systemd-e2e.sh "$build"

step "the Debian package (dpkg-buildpackage, lintian) and a real server's adoption (QEMU: Debian's php8.2-fpm, nginx)"
deb=$(scripts/build-deb.sh "$build/deb" | tail -n 1)
tests/e2e/run-adopt-e2e.sh "$deb"

step "all tests passed"
