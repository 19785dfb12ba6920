#!/usr/bin/env bash
# Checks that includes only run from a higher layer to a lower one:
#   core (nothing) <- wire <- sys <- kinds <- daemon;  metrics <- core, wire;  adopt <- core, wire, sys (files only);
#   ctl <- core, wire, adopt;  tools, bench, tests: anything.
# A file's layer is its folder (src/LAYER, include/idlepool/LAYER). Exits 1 naming every include that runs upwards.
set -euo pipefail
cd "$(dirname "$0")/.."
declare -A allowed=(
  [core]="core"
  [wire]="core wire"
  [sys]="core wire sys"
  [kinds]="core wire sys kinds"
  [metrics]="core wire metrics"
  [adopt]="core wire sys adopt"
  [ctl]="core wire adopt ctl"
)
bad=0
while read -r file; do
  layer=$(sed -E 's#^(src|include/idlepool)/([a-z_]+)/.*#\2#' <<<"$file")
  [[ -n ${allowed[$layer]:-} ]] || continue
  while read -r inc; do
    target=${inc%%/*}
    # The generic bits every layer may use: Result, the version, option errors, the RAII fd.
    [[ $inc == result.h || $inc == version.h || $inc == options_error.h || $inc == sys/unique_fd.h ]] && continue
    [[ $inc == probe_abi.h && $layer == sys ]] && continue  # the kernel/user ABI: the loader's alone
    # adopt links the bounded file reader only (idlepool_files), never the kernel or systemd adapters.
    [[ $layer == adopt && $target == sys && $inc != sys/files.h ]] && { echo "check-layers: $file includes idlepool/$inc (adopt may use sys/files.h only)" >&2; bad=1; continue; }
    if [[ " ${allowed[$layer]} " != *" $target "* ]]; then
      echo "check-layers: $file ($layer) includes idlepool/$inc ($target)" >&2
      bad=1
    fi
  done < <(grep -oE '#include "idlepool/[^"]+"' "$file" | sed -E 's#.*"idlepool/([^"]+)"#\1#')
  # Local includes of another layer's private headers ("pool_manager.h" from metrics, say).
  while read -r local; do
    [[ -f $(dirname "$file")/$local ]] && continue
    echo "check-layers: $file ($layer) includes \"$local\", not a header of its own layer" >&2
    bad=1
  done < <(grep -oE '#include "[^/"]+\.h"' "$file" | sed -E 's#.*"([^"]+)"#\1#' | grep -v -E '^(idlepool\.skel\.h|vmlinux\.h)$' || true)
done < <(git ls-files --cached --others --exclude-standard 'src/*' 'include/idlepool/*' | grep -E '\.(h|cpp)$')
((bad == 0)) && echo "check-layers: every include runs downwards"
exit $bad
