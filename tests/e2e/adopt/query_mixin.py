#!/usr/bin/python3
"""Evaluates every query of the monitoring mixin (dist/monitoring) through a real Prometheus' HTTP API: each recording
rule's series, each alert's expression, each dashboard panel's and variable's query. A query that returns nothing
fails, unless it is an alert (or a panel filtering with a comparison) whose every series does exist: then it is
empty because nothing is wrong, and the line says so. Prints one line per query; exits 1 on any failure.
Usage: query_mixin.py PROMETHEUS_URL MIXIN_DIR"""
import json
import re
import sys
import urllib.parse
import urllib.request

import yaml

url, mixin = sys.argv[1], sys.argv[2]


def query(expr):
    q = urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(f"{url}/api/v1/query?{q}", timeout=30) as r:
        body = json.load(r)
    if body.get("status") != "success":
        raise RuntimeError(body)
    return body["data"]["result"]


def series_names(expr):
    return sorted(set(re.findall(r"(?<![\w:\"$=~])((?:instance)?:?idlepool_[a-z0-9_:]*|up)(?![\w\"])", expr)))


failed = 0


def check(kind, name, expr, may_be_empty):
    global failed
    try:
        result = query(expr)
    except Exception as e:  # noqa: BLE001 - any failure of the query is the finding
        print(f"FAIL {kind} {name}: {e}")
        failed += 1
        return
    if result:
        sample = result[0].get("value", ["", ""])[1]
        print(f"ok   {kind} {name}: {len(result)} series (first {sample})")
        return
    missing = [n for n in series_names(expr) if not query(n)]
    if may_be_empty and not missing:
        print(f"ok   {kind} {name}: empty, as nothing is wrong ({', '.join(series_names(expr))} all present)")
        return
    print(f"FAIL {kind} {name}: empty{'; missing ' + ', '.join(missing) if missing else ''}")
    failed += 1


rules = yaml.safe_load(open(f"{mixin}/idlepool.rules.yml"))
for group in rules["groups"]:
    for rule in group["rules"]:
        if "record" in rule:
            check("record", rule["record"], rule["record"], False)
        else:
            check("alert", rule["alert"], rule["expr"], True)
dash = json.load(open(f"{mixin}/idlepool-dashboard.json"))
subst = {"$instance": ".*", "$pool": ".*"}


def fill(expr):
    for k, v in subst.items():
        expr = expr.replace(k, v)
    return expr


for var in dash["templating"]["list"]:
    m = re.match(r"label_values\((.*), (\w+)\)", var.get("definition", ""))
    if m:
        check("variable", var["name"], f"count by ({m.group(2)}) ({fill(m.group(1))})", False)
for panel in dash["panels"]:
    for t in panel.get("targets", []):
        check("panel", f'"{panel["title"]}" {t["refId"]}', fill(t["expr"]), "==" in t["expr"])
print(f"mixin queries: {failed} failed")
sys.exit(1 if failed else 0)
