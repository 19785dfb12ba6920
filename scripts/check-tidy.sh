#!/usr/bin/env bash
# clang-tidy with the checks of .clang-tidy over every translation unit of the daemon, idlepoolctl and the probe tool
# (src/), from BUILD_DIR's compile_commands.json, two at a time. Any finding fails (WarningsAsErrors). Tests and
# benchmarks are left out: they are many, slow to parse, and not what runs on a server.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:?usage: $0 BUILD_DIR}
mapfile -t units < <(git ls-files --cached --others --exclude-standard 'src/*.cpp')
out=$(mktemp)
trap 'rm -f "$out"' EXIT
if printf '%s\n' "${units[@]}" | xargs -P "$(nproc)" -n 4 clang-tidy -p "$build" --quiet >"$out" 2>&1; then
  echo "check-tidy: ${#units[@]} translation units clean"
  exit 0
fi
grep -E "(error|warning):" "$out" | sort -u >&2
echo "check-tidy: findings above" >&2
exit 1
