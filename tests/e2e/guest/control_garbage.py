#!/usr/bin/env python3
"""Sends garbage to idlepoold's control socket: each must get an error reply or a closed connection."""
import json
import socket
import time

PATH = "/run/idlepool/control.sock"


def ask(data: bytes, wait: float = 10.0):
    s = socket.socket(socket.AF_UNIX)
    s.connect(PATH)
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
for name, ok, evidence in checks:
    print(("ok   " if ok else "FAIL ") + name + ": " + evidence)
print("all answered as expected" if all(ok for _, ok, _ in checks) else "some were not")
