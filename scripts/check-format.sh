#!/usr/bin/env bash
# Checks (or with --fix, applies) the project's formatting: clang-format with the root .clang-format for the C++ and
# user-space C, the kernel style of bpf/.clang-format for the BPF side and the one header it shares with user space.
# Exits 1, naming the files, when something is not formatted. Run by scripts/test.sh on the whole tree.
set -euo pipefail
cd "$(dirname "$0")/.."
fix=0
[[ ${1:-} == --fix ]] && fix=1
kernel=(bpf/idlepool.bpf.c bpf/idlepool.bpf.h include/idlepool/probe_abi.h)
mapfile -t user < <(git ls-files --cached --others --exclude-standard '*.cpp' '*.h' '*.c' |
  grep -v -x -F "$(printf '%s\n' "${kernel[@]}")" | while read -r f; do [[ -f $f ]] && echo "$f"; done)
bad=()
check() {  # STYLE FILE...
  local style=$1 f
  shift
  for f in "$@"; do
    if ((fix)); then
      clang-format -i --style="$style" "$f"
    elif ! clang-format --style="$style" "$f" | cmp -s - "$f"; then
      bad+=("$f")
    fi
  done
}
check file "${user[@]}"
check file:bpf/.clang-format "${kernel[@]}"
if ((${#bad[@]})); then
  echo "check-format: not formatted (scripts/check-format.sh --fix formats them):" >&2
  printf '  %s\n' "${bad[@]}" >&2
  exit 1
fi
echo "check-format: ${#user[@]} + ${#kernel[@]} files formatted"
