# Shared by the QEMU runners (source it): a busybox initramfs around some of the project's binaries, booted with
# one of Debian's stock kernels (scripts/fetch-kernels.sh). The guest runs /guest-command (a shell script the runner
# writes) after mounting what the probe needs, prints "IDLEPOOL-RESULT: rc=N" and powers off. QEMU exits 0 whatever
# the guest did, so callers decide from the serial log. Software emulation (TCG): /dev/kvm exists on these machines
# but a KVM guest hangs at boot.

# guest_root ROOT BINARY...: a root with busybox, the binaries in /bin and the libraries ldd names at their paths.
guest_root() {
  local root=$1 bin lib applet
  shift
  mkdir -p "$root"/{bin,dev,proc,sys,tmp,run,etc,modules}
  cp /bin/busybox "$root/bin/busybox"
  for applet in sh mount mkdir cat echo ip poweroff sleep uname grep sed tr insmod; do
    ln -sf busybox "$root/bin/$applet"
  done
  for bin in "$@"; do
    cp "$bin" "$root/bin/"
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
mount -t cgroup2 cgroup2 /sys/fs/cgroup
# sock_diag handlers are modules in Debian's kernels; a full system loads them on demand, this initramfs by hand.
for m in inet_diag tcp_diag unix_diag; do insmod /modules/$m.ko || echo "IDLEPOOL-GUEST: insmod $m failed"; done
ip link set lo up
export IDLEPOOL_BIN_DIR=/bin
echo "IDLEPOOL-GUEST: kernel $(uname -r)"
. /guest-command
echo "IDLEPOOL-RESULT: rc=$?"
poweroff -f
INIT
  chmod +x "$root/init"
}

# guest_initrd ROOT KERNEL_DIR COMMAND_FILE OUT: ROOT plus the kernel's sock_diag modules and the command, packed.
guest_initrd() {
  local root=$1 dir=$2 command=$3 out=$4 m f work
  work=$(mktemp -d "${TMPDIR:-/tmp}/idlepool-initrd.XXXXXX")
  cp -a "$root/." "$work/"
  cp "$command" "$work/guest-command"
  for m in inet_diag tcp_diag unix_diag; do
    f=$(find "$dir" -name "$m.ko" -o -name "$m.ko.xz" -o -name "$m.ko.zst" | head -n1)
    [[ -n $f ]] || { echo "no $m module in $dir" >&2; rm -rf "$work"; return 1; }
    case $f in
      *.xz) xz -dc "$f" >"$work/modules/$m.ko" ;;
      *.zst) zstd -dcq "$f" >"$work/modules/$m.ko" ;;
      *) cp "$f" "$work/modules/$m.ko" ;;
    esac
  done
  (cd "$work" && find . | cpio -o -H newc --quiet | gzip -1) >"$out"
  rm -rf "$work"
}

# guest_boot KERNEL_DIR INITRD LOG TIMEOUT_S [KERNEL_ARGS]: boots and waits; the serial console goes to LOG.
# IDLEPOOL_QEMU_ARGS adds QEMU options (bench/run-in-guest.sh uses -icount).
guest_boot() {
  local dir=$1 initrd=$2 log=$3 timeout_s=$4 args=${5:-} extra
  read -r -a extra <<<"${IDLEPOOL_QEMU_ARGS:-}"
  timeout --kill-after=10 "$timeout_s" qemu-system-x86_64 -accel tcg -smp 2 -m 1024 "${extra[@]}" \
    -nographic -no-reboot -monitor none -serial "file:$log" \
    -kernel "$dir/vmlinuz" -initrd "$initrd" -append "console=ttyS0 panic=-1 quiet $args" >/dev/null 2>&1 || true
}

# guest_verdict LOG LABEL TIMEOUT_S: 0 if the guest's command succeeded; says why not otherwise.
guest_verdict() {
  local log=$1 label=$2 timeout_s=$3
  grep -q "IDLEPOOL-RESULT: rc=0" "$log" && return 0
  if ! grep -q "IDLEPOOL-GUEST" "$log"; then
    echo "$label: FAIL: the guest never started its command; serial log tail:"
  elif ! grep -q "IDLEPOOL-RESULT" "$log"; then
    echo "$label: FAIL: no result within ${timeout_s}s (hang); serial log tail:"
  else
    echo "$label: FAIL; serial log tail:"
  fi
  tail -n 40 "$log" | sed "s/^/  [$label] /"
  return 1
}
