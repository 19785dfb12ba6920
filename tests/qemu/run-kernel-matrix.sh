#!/usr/bin/env bash
# Runs the probe's kernel tests (build/tests/idlepool_kernel_tests) inside QEMU guests booted with Debian's own
# stock kernels: Debian 12's 6.1 and Debian 13's 6.12. There the probe must pick the fentry tier and count exactly.
#
# Each guest boots a busybox initramfs holding the test binary and the libraries it links; /init mounts what the probe
# needs, brings lo up, runs the tests and prints a result line on the serial console. QEMU exits 0 whatever the guest
# did, so pass/fail is read from the serial log; a guest that hangs is killed by a timeout and fails the run.
# Software emulation (TCG): /dev/kvm exists on these machines but a KVM guest hangs at boot.
#
# Usage: tests/qemu/run-kernel-matrix.sh BUILD_DIR [SUITE...]     (SUITE: bookworm, trixie; default both)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
build=$(cd "${1:?usage: $0 BUILD_DIR [SUITE...]}" && pwd)
shift
suites=("$@")
((${#suites[@]})) || suites=(bookworm trixie)
timeout_s=${IDLEPOOL_GUEST_TIMEOUT:-900}

# What each kernel allows (see tests/kernel/probe_test.cpp for the variables).
declare -A tiers=([bookworm]=auto,syscall [trixie]=auto,sock,syscall)
declare -A unavailable=([bookworm]=sock [trixie]=)

work=$(mktemp -d /tmp/idlepool-qemu.XXXXXX)
[[ -n ${IDLEPOOL_KEEP_GUEST_LOGS:-} ]] && echo "guest logs kept in $work" || trap 'rm -rf "$work"' EXIT

build_initramfs() {
  local root=$work/root
  mkdir -p "$root"/{bin,dev,proc,sys,tmp,run,etc}
  cp /bin/busybox "$root/bin/busybox"
  for applet in sh mount mkdir cat echo ip poweroff sleep uname grep sed tr insmod; do
    ln -sf busybox "$root/bin/$applet"
  done
  local bin
  for bin in "$build/tests/idlepool_kernel_tests" "$build/src/idlepool-probe"; do
    cp "$bin" "$root/bin/"
    # The libraries ldd names, at the same paths.
    ldd "$bin" | awk '/=>/ {print $3} $1 ~ /^\// {print $1}' | while read -r lib; do
      [[ -f $lib ]] || continue
      mkdir -p "$root$(dirname "$lib")"
      cp -L "$lib" "$root$lib"
    done
  done
  cat >"$root/init" <<'INIT'
#!/bin/sh
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mount -t tmpfs tmp /tmp
mount -t tmpfs run /run
mount -t bpf bpf /sys/fs/bpf
mount -t tracefs tracefs /sys/kernel/tracing
# sock_diag handlers are modules in Debian's kernels; a full system loads them on demand, this initramfs by hand.
for m in inet_diag tcp_diag unix_diag; do insmod /modules/$m.ko || echo "IDLEPOOL-GUEST: insmod $m failed"; done
ip link set lo up
arg() { tr ' ' '\n' </proc/cmdline | sed -n "s/^$1=//p"; }
export IDLEPOOL_TEST_TIERS=$(arg idlepool.tiers)
export IDLEPOOL_EXPECT_AUTO_TIER=$(arg idlepool.expect_auto)
export IDLEPOOL_UNAVAILABLE_TIERS=$(arg idlepool.unavailable)
export IDLEPOOL_BIN_DIR=/bin
echo "IDLEPOOL-GUEST: kernel $(uname -r), tiers $IDLEPOOL_TEST_TIERS"
/bin/idlepool_kernel_tests --gtest_color=no
echo "IDLEPOOL-RESULT: rc=$?"
poweroff -f
INIT
  chmod +x "$root/init"
}

# The shared root plus the kernel's own sock_diag modules (decompressed: busybox insmod takes plain .ko files).
pack_initramfs() {
  local suite=$1 dir=$2 root=$work/root-$1 m f
  rm -rf "$root" && cp -a "$work/root" "$root" && mkdir -p "$root/modules"
  for m in inet_diag tcp_diag unix_diag; do
    f=$(find "$dir" -name "$m.ko" -o -name "$m.ko.xz" -o -name "$m.ko.zst" | head -n1)
    [[ -n $f ]] || { echo "kernel $suite: no $m module in $dir" >&2; return 1; }
    case $f in
      *.xz) xz -dc "$f" >"$root/modules/$m.ko" ;;
      *.zst) zstd -dcq "$f" >"$root/modules/$m.ko" ;;
      *) cp "$f" "$root/modules/$m.ko" ;;
    esac
  done
  (cd "$root" && find . | cpio -o -H newc --quiet | gzip -1) >"$work/initrd-$suite.gz"
}

run_guest() {
  local suite=$1 version=$2 dir=$3 log=$work/$suite.log
  local append="console=ttyS0 panic=-1 quiet idlepool.tiers=${tiers[$suite]} idlepool.expect_auto=fentry"
  append+=" idlepool.unavailable=${unavailable[$suite]}"
  local start=$SECONDS
  timeout --kill-after=10 "$timeout_s" qemu-system-x86_64 -accel tcg -smp 2 -m 1024 \
    -nographic -no-reboot -monitor none -serial "file:$log" \
    -kernel "$dir/vmlinuz" -initrd "$work/initrd-$suite.gz" -append "$append" >/dev/null 2>&1 || true
  local took=$((SECONDS - start))
  # The evidence: what the guest ran and how each test ended.
  grep -aE "IDLEPOOL-GUEST|\[  (PASSED|FAILED) +\]|\[ info \]|Failure|got accepts|tests ran" "$log" |
    sed -e 's/.*IDLEPOOL-GUEST/IDLEPOOL-GUEST/' -e "s/^/  [$suite] /" || true
  if grep -q "IDLEPOOL-RESULT: rc=0" "$log"; then
    echo "kernel $version ($suite): PASS in ${took}s"
    return 0
  fi
  if ! grep -q "IDLEPOOL-GUEST" "$log"; then
    echo "kernel $version ($suite): FAIL: the guest never started the tests (${took}s); serial log tail:"
  elif ! grep -q "IDLEPOOL-RESULT" "$log"; then
    echo "kernel $version ($suite): FAIL: no result within ${timeout_s}s (hang); serial log tail:"
  else
    echo "kernel $version ($suite): FAIL; serial log tail:"
  fi
  tail -n 40 "$log" | sed "s/^/  [$suite] /"
  return 1
}

build_initramfs
failed=0
while read -r suite version dir; do
  pack_initramfs "$suite" "$dir" && run_guest "$suite" "$version" "$dir" || failed=1
done < <("$top/scripts/fetch-kernels.sh" "${suites[@]}")
exit $failed
