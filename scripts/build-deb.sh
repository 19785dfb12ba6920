#!/usr/bin/env bash
# Builds the Debian package from this tree with Debian's own tooling (dpkg-buildpackage, debhelper, Debian's
# hardening build flags) and checks it with lintian. The tree's files (as git lists them, committed or not) are
# copied to a scratch directory first, so the tree stays clean.
# Usage: scripts/build-deb.sh [OUT_DIR]   (default build-deb/; prints the .deb's path last)
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
out=$(mkdir -p "${1:-$top/build-deb}" && cd "${1:-$top/build-deb}" && pwd)
work=$(mktemp -d /tmp/idlepool-deb.XXXXXX)
trap 'rm -rf "$work"' EXIT
src=$work/idlepool
mkdir -p "$src"
(cd "$top" && git ls-files -z --cached --others --exclude-standard | xargs -0 cp --parents -t "$src")
(cd "$src" && dpkg-buildpackage -b -us -uc -j"$(nproc)" >"$work/build.log" 2>&1) || {
  tail -n 40 "$work/build.log"
  echo "build-deb: dpkg-buildpackage failed" >&2
  exit 1
}
deb=$(ls "$work"/idlepool_*.deb)
lintian --fail-on error,warning --info "$deb" "$work"/idlepool_*.changes
cp "$deb" "$out/"
echo "$out/$(basename "$deb")"
