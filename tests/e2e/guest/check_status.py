#!/usr/bin/env python3
"""Checks `idlepoolctl --json=short status` field by field (argv[1]: the JSON file). Prints what it checked."""
import json
import sys

j = json.load(open(sys.argv[1]))
pools = {p["pool"]: p for p in j["pools"]}
assert set(pools) == {"php-fpm@alias.service", "php-fpm@naive.service", "php-fpm-seed.service", "vanish.service",
                      "pyhttp.service"}, sorted(pools)
a, n, s, v, py = (pools[k] for k in ("php-fpm@alias.service", "php-fpm@naive.service", "php-fpm-seed.service",
                                     "vanish.service", "pyhttp.service"))
assert j["version"] == 4 and a["kind"] == "php-fpm" and py["kind"] == "generic" and v["kind"] == "generic", j
assert n["rule"] == "unsafe" and n["decision"] == "never", n
assert a["idle_timeout_seconds"] == 6 and a["min_uptime_seconds"] == 2, a
assert a["unsafe"] is None and a["can_wake"] is True and a["pinned"] is False and a["keepalive_connections"] == "wait", a
assert a["sockets"][0]["address"] == "/run/php/alias.sock" and a["sockets"][0]["unit"] == "php-fpm@alias.socket", a
assert "own path" in n["unsafe"] and n["not_stopping_because"].startswith("unsafe"), n
assert n["running"] is True and n["processes"] >= 1, n
assert s["sockets"][0]["address"] == "127.0.0.1:8888" and s["sockets"][0]["listening"] is True, s
assert "vanished" in v["unsafe"], v
# A fixed idle-timeout is the window every decision of these pools uses (rhythm.sh checks an adaptive one).
assert a["adaptive"] is False and a["idle_window"]["reason"] == "fixed" and a["idle_window"]["seconds"] == 6, a
assert isinstance(a["stops"].get("idle", 0), int) and a["memory_released_bytes"] >= 0, a
for p in pools.values():
    for k in ("state", "processes", "active", "backlog", "idle", "accepts", "requests", "idle_seconds", "decision",
              "stops_in_seconds", "memory_released_bytes", "wake_latency", "visitor_wake",
              "slowest_visitor_wake_seconds", "sockets", "warnings"):
        assert k in p, (p["pool"], k)
assert j["probe"]["accepts"] == "fentry" and "pools:" in j["summary"], j
print(f"5 pools checked field by field; naive unsafe, vanish unsafe, pyhttp generic, alias {a['state']} with "
      f"{a['stops']} stops")
