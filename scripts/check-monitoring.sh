#!/usr/bin/env bash
# Checks the monitoring mixin (dist/monitoring): promtool check rules, promtool test rules (every alert firing and not
# firing, the recording rules' values), and that every metric the rules and the dashboard's queries name is one
# idlepoold exports (src/metrics/metrics.cpp), a recording rule of the mixin, or Prometheus' own `up`. Exits 1 naming
# what is wrong. Run by ctest (`monitoring`).
set -euo pipefail
cd "$(dirname "$0")/.."
dir=dist/monitoring
promtool check rules "$dir/idlepool.rules.yml" >/dev/null
(cd "$dir" && promtool test rules idlepool.rules.test.yml >/dev/null)
python3 - "$dir" <<'PY'
import json, re, sys
d = sys.argv[1]
exported = set(re.findall(r'"(idlepool_[a-z_]+)"', open("src/metrics/metrics.cpp").read()))
known = set(exported) | {"up"}
for m in exported:
    known |= {m + "_bucket", m + "_count", m + "_sum"}
rules = open(f"{d}/idlepool.rules.yml").read()
recorded = set(re.findall(r"record: (\S+)", rules))
known |= recorded
exprs = re.findall(r"expr: (.*)", rules)
exprs += [m.group(1) for m in re.finditer(r"expr: >-\n((?:\s{10}.*\n)+)", rules)]
dash = json.load(open(f"{d}/idlepool-dashboard.json"))
for p in dash["panels"]:
    exprs += [t["expr"] for t in p.get("targets", [])]
exprs += [v["definition"] for v in dash["templating"]["list"] if "definition" in v]
bad = 0
for e in exprs:
    for n in set(re.findall(r"(?<![\w:\"$=~])(:?(?:instance:)?:?idlepool_[a-z0-9_:]*|up)(?![\w\"])", e)):
        if n not in known:
            print(f"check-monitoring: {n} (in {e.strip()[:80]}) is neither exported nor recorded", file=sys.stderr)
            bad = 1
print(f"check-monitoring: {len(exprs)} expressions name only exported or recorded series" if not bad else "", end="")
sys.exit(bad)
PY
echo
