#!/usr/bin/env bash
# Mounts what the probe needs when the machine booted without it (idempotent): tracefs for tracepoints, bpffs.
set -euo pipefail
mountpoint -q /sys/kernel/tracing || mount -t tracefs nodev /sys/kernel/tracing
mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf
