#!/usr/bin/env bash
# Checks that each given ELF binary was built hardened (what Debian's hardening-check looks for), from readelf:
#   PIE                position-independent executable (type DYN, FLAGS_1 PIE)
#   full RELRO         a GNU_RELRO segment and BIND_NOW
#   stack protector    calls __stack_chk_fail
#   FORTIFY_SOURCE     calls at least one checked libc function (__*_chk)
#   NX stack           GNU_STACK not executable
# Usage: scripts/check-hardening.sh BINARY...; exits non-zero naming each binary and what it lacks.
set -uo pipefail
(($# > 0)) || {
  echo "usage: $0 BINARY..." >&2
  exit 2
}
bad=0
for bin in "$@"; do
  missing=()
  header=$(readelf -hW "$bin" 2>&1) || {
    echo "check-hardening: $bin: not an ELF file: $header" >&2
    bad=1
    continue
  }
  dynamic=$(readelf -dW "$bin")
  segments=$(readelf -lW "$bin")
  symbols=$(readelf --dyn-syms -W "$bin")
  grep -q "Type:.*DYN" <<<"$header" && grep -Eq "FLAGS_1.*PIE" <<<"$dynamic" || missing+=("PIE")
  grep -q "GNU_RELRO" <<<"$segments" || missing+=("RELRO")
  grep -Eq "BIND_NOW|FLAGS_1.*NOW" <<<"$dynamic" || missing+=("BIND_NOW")
  grep -q "__stack_chk_fail" <<<"$symbols" || missing+=("stack protector")
  grep -Eq " __[a-z_]+_chk(@|$)" <<<"$symbols" || missing+=("FORTIFY_SOURCE")
  grep -E "GNU_STACK" <<<"$segments" | grep -q "RWE" && missing+=("NX stack")
  if ((${#missing[@]})); then
    echo "check-hardening: $bin lacks: ${missing[*]}" >&2
    bad=1
  else
    echo "check-hardening: $bin: PIE, full RELRO, stack protector, FORTIFY_SOURCE, NX stack"
  fi
done
exit $bad
