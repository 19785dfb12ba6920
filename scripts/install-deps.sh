#!/usr/bin/env bash
# Installs every Debian package that building, testing, benchmarking and the demo need.
# Idempotent: packages already present are skipped; `apt-get update` runs once, only when something is missing.
set -euo pipefail

packages=(
  # build
  build-essential cmake ninja-build pkg-config clang llvm lld
  libbpf-dev bpftool libelf-dev zlib1g-dev
  libnl-3-dev libnl-genl-3-dev
  libboost-program-options-dev libspdlog-dev libfmt-dev
  libsystemd-dev prometheus-cpp-dev nlohmann-json3-dev
  libgtest-dev libgmock-dev
  # the Debian package and its man pages
  debhelper dpkg-dev fakeroot lintian help2man
  # fuzzing
  libfuzzer-14-dev libclang-rt-14-dev
  # tests, demo, benchmarks
  iproute2 procps psmisc util-linux kmod
  qemu-system-x86 busybox-static cpio
  php8.2-fpm php8.2-cli nginx libfcgi-bin wrk curl
  prometheus python3-yaml
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done

if ((${#missing[@]} == 0)); then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi

echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
# policy-rc.d keeps the distribution's own php-fpm, nginx and prometheus services from starting on install:
# the tests start what they need themselves.
policy=/usr/sbin/policy-rc.d
created_policy=0
if [[ ! -e $policy ]]; then
  printf '#!/bin/sh\nexit 101\n' >"$policy"
  chmod +x "$policy"
  created_policy=1
fi
trap '((created_policy)) && rm -f "$policy"' EXIT
apt-get install -y -q --no-install-recommends "${missing[@]}"
