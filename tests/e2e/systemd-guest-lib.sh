# Shared by the runners that need a real systemd (source it): a QEMU guest booted with Debian 12's stock kernel,
# with systemd as PID 1 on this host's own root filesystem.
#
# The host's / is shared read-only over virtio-9p and is the lower layer of an overlay whose upper layer is a tmpfs;
# the runner's files (units, configuration: a tree mirroring /) are copied into the overlay before switch_root, so the
# guest runs the host's installed packages (systemd, php-fpm, nginx) and this build tree at the same paths.
# The guest boots into idlepool-e2e.target (basic.target plus what the runner's tree adds), not multi-user.target,
# so the host's enabled services (its nginx, php-fpm, postgresql...) stay off. A guest that never boots or hangs
# is killed by a timeout; pass/fail is read from the serial log. Recipe and pitfalls: ../shared/ENVIRONMENT.md.

# systemd_guest_boot TREE LOG TIMEOUT_S [KEEP_PATH...]: boots, runs, waits for the guest to power off. The guest gets
# a tmpfs of its own on /tmp; KEEP_PATHs under /tmp (the repository, when it was cloned there) are bound through.
systemd_guest_boot() {
  local tree=$1 log=$2 timeout_s=$3 top suite version dir work m f extra
  shift 3
  top=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
  read -r suite version dir < <("$top/scripts/fetch-kernels.sh" bookworm)
  work=$(mktemp -d /tmp/idlepool-systemd-guest.XXXXXX)
  mkdir -p "$work/root"/{bin,dev,proc,sys,modules,lower,upper,newroot,guest-files}
  cp /bin/busybox "$work/root/bin/busybox"
  for applet in sh mount umount mkdir cp rm insmod switch_root echo cat sleep; do
    ln -sf busybox "$work/root/bin/$applet"
  done
  # The host's root has no modules for this kernel, so nothing can be loaded on demand in the guest: load here what
  # the root needs (9p, overlay) and what idlepool needs (sock_diag handlers).
  for m in virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci 9pnet 9pnet_virtio netfs fscache 9p \
    overlay inet_diag tcp_diag unix_diag; do
    f=$(find "$dir/lib/modules" -name "$m.ko" -o -name "$m.ko.xz" | head -n1)
    [[ -n $f ]] || { echo "systemd guest: no module $m in $dir" >&2; return 1; }
    case $f in
      *.xz) xz -dc "$f" >"$work/root/modules/$m.ko" ;;
      *) cp "$f" "$work/root/modules/$m.ko" ;;
    esac
  done
  cp -a "$tree/." "$work/root/guest-files/"
  printf '%s\n' "$@" >"$work/root/keep-paths"
  cat >"$work/root/init" <<'INIT'
#!/bin/sh
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for m in virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci 9pnet 9pnet_virtio netfs fscache 9p overlay \
  inet_diag tcp_diag unix_diag; do
  insmod /modules/$m.ko 2>/dev/null
done
mount -t 9p -o trans=virtio,version=9p2000.L,cache=loose,msize=512000,ro hostroot /lower || echo "IDLEPOOL-GUEST: 9p mount failed"
mount -t tmpfs -o size=768m tmpfs /upper
mkdir -p /upper/upper /upper/work
mount -t overlay overlay -o lowerdir=/lower,upperdir=/upper/upper,workdir=/upper/work /newroot || echo "IDLEPOOL-GUEST: overlay failed"
cp -a /guest-files/. /newroot/
# systemd must not believe it runs in a container; the guest gets its own /tmp (the host's over 9p is slow to clean).
rm -f /newroot/.dockerenv
mount -t tmpfs tmpfs /newroot/tmp
for p in $(cat /keep-paths); do
  case $p in
    /tmp/*) mkdir -p /newroot$p && mount -o bind /lower$p /newroot$p ;;
  esac
done
umount /proc /sys
umount /dev
exec switch_root /newroot /lib/systemd/systemd
INIT
  chmod +x "$work/root/init"
  (cd "$work/root" && find . | cpio -o -H newc --quiet | gzip -1) >"$work/initrd.gz"
  read -ra extra <<<"${IDLEPOOL_QEMU_ARGS:-}"  # more QEMU options (bench/run-systemd-bench.sh: -icount)
  timeout --kill-after=10 "$timeout_s" qemu-system-x86_64 "${extra[@]}" -accel tcg -smp 2 -m "${IDLEPOOL_GUEST_MEMORY:-2048}" -nographic -no-reboot \
    -monitor none -serial "file:$log" -kernel "$dir/vmlinuz" -initrd "$work/initrd.gz" \
    -append "console=ttyS0 panic=-1 quiet systemd.unit=idlepool-e2e.target systemd.show_status=0 systemd.firstboot=off" \
    -fsdev local,id=hostroot,path=/,security_model=none,readonly=on,multidevs=remap \
    -device virtio-9p-pci,fsdev=hostroot,mount_tag=hostroot >/dev/null 2>&1 || true
  rm -rf "$work"
}

# systemd_guest_tree TREE DRIVER: a tree with idlepool-e2e.target starting DRIVER (a script run as root, its output on
# the serial console) and powering off when it ends.
systemd_guest_tree() {
  local tree=$1 driver=$2
  mkdir -p "$tree/etc/systemd/system"
  cat >"$tree/etc/systemd/system/idlepool-e2e.target" <<'UNIT'
[Unit]
Description=idlepool end-to-end guest
Requires=basic.target
After=basic.target
Wants=idlepool-e2e.service
AllowIsolate=yes
UNIT
  cat >"$tree/etc/systemd/system/idlepool-e2e.service" <<UNIT
[Unit]
Description=idlepool end-to-end driver
After=basic.target
[Service]
Type=oneshot
ExecStart=/bin/bash -c 'echo "IDLEPOOL-GUEST: driver started"; $driver; echo "IDLEPOOL-RESULT: rc=\$?"'
ExecStopPost=/bin/systemctl poweroff --force --force
StandardOutput=tty
StandardError=tty
TTYPath=/dev/ttyS0
TimeoutStartSec=infinity
UNIT
  # The guest has no network and no udev-managed consoles to log in on; time is not synchronised.
  for unit in systemd-timesyncd.service getty@tty1.service serial-getty@ttyS0.service; do
    ln -sf /dev/null "$tree/etc/systemd/system/$unit"
  done
}
