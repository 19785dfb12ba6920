#!/usr/bin/env bash
# Fetches Debian's own stock kernels for the QEMU test guests and unpacks them into a cache outside the clone:
#   bookworm -> Debian 12's 6.1, trixie -> Debian 13's 6.12.
# The version is resolved through the linux-image-amd64 metapackage; the -unsigned image package is downloaded with
# `apt-get download` and unpacked with `dpkg -x` (nothing is installed into /boot). Trixie uses a private apt state
# whose sources are this machine's own bookworm sources with the suite changed.
# Usage: fetch-kernels.sh [SUITE...]   (default: bookworm trixie)
# Prints one line per suite: SUITE VERSION DIRECTORY   (DIRECTORY holds vmlinuz and lib/modules/VERSION)
set -euo pipefail

cache=${IDLEPOOL_KERNEL_CACHE:-/var/cache/idlepool/kernels}
suites=("$@")
((${#suites[@]})) || suites=(bookworm trixie)
mkdir -p "$cache"

# apt options for a suite: the machine's own state for its own suite, a private state for another one.
apt_opts_for() {
  local suite=$1 own
  own=$(. /etc/os-release && echo "$VERSION_CODENAME")
  if [[ $suite == "$own" ]]; then
    return 0
  fi
  local state=$cache/apt-$suite
  mkdir -p "$state/lists/partial" "$state/archives/partial" "$state/etc"
  local src=$state/etc/sources.list
  if [[ ! -s $src ]]; then
    derive_sources "$own" "$suite" >"$src"
  fi
  printf '%s\n' -o "Dir::State=$state" -o "Dir::State::Lists=$state/lists" -o "Dir::State::status=/dev/null" \
    -o "Dir::Cache=$state" -o "Dir::Cache::archives=$state/archives" -o "Dir::Etc::SourceList=$src" \
    -o "Dir::Etc::SourceParts=/dev/null" -o "APT::Get::List-Cleanup=0"
}

# One-line sources for SUITE derived from the machine's main (non-security) sources for OWN.
derive_sources() {
  local own=$1 suite=$2 uri=""
  if [[ -f /etc/apt/sources.list.d/debian.sources ]]; then
    # deb822: first stanza whose Suites names the own suite without -security.
    uri=$(awk -v own="$own" '
      /^URIs:/ {u=$2} /^Suites:/ {for (i=2;i<=NF;i++) if ($i==own) s=1}
      /^$/ {if (s && u !~ /security/) {print u; exit} u=""; s=0}
      END {if (s && u !~ /security/) print u}' /etc/apt/sources.list.d/debian.sources | head -n1)
  fi
  if [[ -z $uri && -f /etc/apt/sources.list ]]; then
    uri=$(awk -v own="$own" '$1=="deb" && $3==own {print $2; exit}' /etc/apt/sources.list)
  fi
  [[ -n $uri ]] || { echo "fetch-kernels: cannot find the $own sources of this machine" >&2; return 1; }
  echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $uri $suite main"
}

fetch_suite() {
  local suite=$1 opts=() version pkg dir
  mapfile -t opts < <(apt_opts_for "$suite")
  if [[ -f $cache/$suite.version ]]; then
    version=$(cat "$cache/$suite.version")
    dir=$cache/$suite-$version
    if [[ -f $dir/vmlinuz ]]; then
      echo "$suite $version $dir"
      return 0
    fi
  fi
  if ((${#opts[@]})); then
    apt-get "${opts[@]}" -q update >&2
  fi
  # linux-image-amd64 depends on linux-image-VERSION-amd64; the unsigned package carries the same kernel.
  pkg=$(apt-cache "${opts[@]}" depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
  [[ -n $pkg ]] || { echo "fetch-kernels: no linux-image-amd64 dependency in $suite" >&2; return 1; }
  version=${pkg#linux-image-}
  dir=$cache/$suite-$version
  local work=$cache/download-$suite
  rm -rf "$work" && mkdir -p "$work"
  (cd "$work" && apt-get "${opts[@]}" -q download "$pkg-unsigned" >&2)
  rm -rf "$dir.tmp" && mkdir -p "$dir.tmp"
  dpkg -x "$work"/*.deb "$dir.tmp"
  cp "$dir.tmp/boot/vmlinuz-$version" "$dir.tmp/vmlinuz"
  rm -rf "$dir" && mv "$dir.tmp" "$dir"
  rm -rf "$work"
  echo "$version" >"$cache/$suite.version"
  echo "$suite $version $dir"
}

for s in "${suites[@]}"; do
  fetch_suite "$s"
done
