#!/usr/bin/env python3
"""A web client that never stops: one new connection per request through nginx, round robin over the given paths,
until STOP_FILE exists. Prints one JSON object: per path, requests that got 200 "ok" and those that did not (with
the first and the last few failures' times and reasons). Usage: client.py STOP_FILE PATH..."""
import http.client
import json
import os
import sys
import time


def main():
    stop, paths = sys.argv[1], sys.argv[2:]
    counts = {p: {"ok": 0, "failed": 0, "failures": [], "last": []} for p in paths}
    start = time.monotonic()
    counts["started"] = time.time()
    i = 0
    while not os.path.exists(stop):
        path = paths[i % len(paths)]
        i += 1
        c = counts[path]
        try:
            conn = http.client.HTTPConnection("127.0.0.1", 80, timeout=30)
            conn.request("GET", path)
            r = conn.getresponse()
            body = r.read()
            conn.close()
            good = r.status == 200 and body.startswith(b"ok")
            why = "HTTP %d %r" % (r.status, body[:60])
        except OSError as e:
            good, why = False, repr(e)
        if good:
            c["ok"] += 1
        else:
            c["failed"] += 1
            failure = "%.3fs %s" % (time.monotonic() - start, why)
            if len(c["failures"]) < 5:
                c["failures"].append(failure)
            c["last"] = (c["last"] + [failure])[-3:]
        c["end"] = "%.3fs" % (time.monotonic() - start)
    print(json.dumps(counts))


main()
