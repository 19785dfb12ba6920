#!/usr/bin/env python3
"""Sends garbage to idlepoold's control socket and its metrics endpoint: each must get an error reply or a closed
connection, and both must serve a good request after it all."""
import json
import select
import socket
import time

PATH = "/run/idlepool/control.sock"


METRICS = ("127.0.0.1", 10071)


def ask(data: bytes, wait: float = 10.0, to=PATH):
    s = socket.socket(socket.AF_UNIX if isinstance(to, str) else socket.AF_INET)
    s.connect(to)
    s.settimeout(wait)
    try:
        s.sendall(data)
    except (BrokenPipeError, ConnectionResetError):
        pass  # the daemon answered before reading it all (too long) and stopped reading: its answer is still there
    start = time.time()
    out = b""
    try:
        while True:
            b = s.recv(65536)
            if not b:
                break
            out += b
    except socket.timeout:
        out += b"<no answer and not closed>"
    except ConnectionResetError:
        pass  # closed with our unread bytes still queued: the kernel resets; what was read stands
    return out.decode(errors="replace").strip(), time.time() - start


def code(reply: str) -> str:
    return json.loads(reply).get("code", "?")


checks = []
r, _ = ask(b"garbage\n")
checks.append(("not JSON", code(r) == "bad-request", r))
r, _ = ask(b"x" * 70000)
checks.append(("70000 bytes, no newline", code(r) == "bad-request" and "64 KiB" in r, r[:80]))
r, t = ask(b'{"version":1')
checks.append((f"half-sent, closed after {t:.1f}s", r == "" and 4 <= t <= 8, repr(r)))
r, _ = ask(b'{"version":1,"verb":"status","pool":' + bytes(range(1, 32)) + b"}\n")
checks.append(("control characters", code(r) == "bad-request", r[:80]))
r, _ = ask(b'{"version":7,"verb":"status"}\n')
checks.append(("version 7", code(r) == "unsupported-version", r[:80]))
r, _ = ask(b'{"version":1,"verb":"status"}\n')
checks.append(("a good request after all that", json.loads(r)["ok"] is True, r[:60]))


def http(data: bytes, wait: float = 10.0):
    return ask(data, wait, METRICS)


def status(reply: str) -> str:
    return reply.split("\r\n", 1)[0]


r, _ = http(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(range(32)))
checks.append(("metrics: a TLS hello", status(r) == "HTTP/1.1 400 Bad Request", status(r)))
r, _ = http(b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n")
checks.append(("metrics: unknown path", status(r) == "HTTP/1.1 404 Not Found", status(r)))
r, _ = http(b"DELETE /metrics HTTP/1.1\r\n\r\n")
checks.append(("metrics: DELETE", status(r) == "HTTP/1.1 405 Method Not Allowed" and "Allow: GET, HEAD" in r, status(r)))
r, _ = http(b"GET /metrics HTTP/1.1\r\nX-Junk: " + b"a" * 10000)
checks.append(("metrics: 10 KB head", status(r) == "HTTP/1.1 431 Request Header Fields Too Large", status(r)))
r, t = http(b"GET /metrics HTTP/1.1\r\n")
checks.append((f"metrics: half-sent, closed after {t:.1f}s", r == "" and 4 <= t <= 8, repr(r[:40])))
# More idle clients from one user than it keeps for one user (8): each new one closes that user's oldest, so the
# newest 8 stay open and the other 72 are closed; nobody can hold the endpoint. Then it serves again.
idle = []
for _ in range(80):
    c = socket.create_connection(METRICS)
    idle.append(c)
closed = set()
deadline = time.monotonic() + 10
while len(closed) < 72 and time.monotonic() < deadline:
    readable, _, _ = select.select([c for c in idle if c not in closed], [], [], 0.5)
    for c in readable:
        try:
            if c.recv(1) == b"":
                closed.add(c)
        except ConnectionResetError:
            closed.add(c)
kept = [i for i, c in enumerate(idle) if c not in closed]
for c in idle:
    c.close()
checks.append(("metrics: 80 idle clients of one user", len(closed) == 72 and kept == list(range(72, 80)),
               f"{len(closed)} closed, kept {kept}"))
time.sleep(0.5)
r, _ = http(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
checks.append(("metrics: a good scrape after all that", status(r) == "HTTP/1.1 200 OK" and "idlepool_build_info" in r, status(r)))
for name, ok, evidence in checks:
    print(("ok   " if ok else "FAIL ") + name + ": " + evidence)
print("all answered as expected" if all(ok for _, ok, _ in checks) else "some were not")
