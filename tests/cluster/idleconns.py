"""Idle keep-alive connections, as the clients of a region hold them: each has completed one
request and stays open and silent. Used by tests/cluster/test_connections.py and
bench/bench_conns.py."""
import resource
import selectors
import socket
import sys
import time

LIVEZ = b"GET /livez HTTP/1.1\r\nHost: idle\r\n\r\n"


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def raise_nofile(need):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = need if hard == resource.RLIM_INFINITY else min(need, hard)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    if want < need:
        raise RuntimeError(f"the open-file hard limit {hard} is below the {need} needed")


def one_request_each(socks, timeout=60):
    """Send GET /livez on every socket (non-blocking) and wait for every answer; returns how many
    got a 200 and how many failed."""
    sel = selectors.DefaultSelector()
    pending = {}
    for s in socks:
        try:
            s.send(LIVEZ)
        except OSError:
            continue
        pending[s] = b""
        sel.register(s, selectors.EVENT_READ)
    ok = 0
    deadline = time.time() + timeout
    while pending and time.time() < deadline:
        for key, _ in sel.select(timeout=1):
            s = key.fileobj
            try:
                data = s.recv(4096)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            buf = pending[s] + data
            head, sep, rest = buf.partition(b"\r\n\r\n")
            if not data or sep:
                if sep:
                    n = 0
                    for line in head.split(b"\r\n"):
                        if line.lower().startswith(b"content-length:"):
                            n = int(line.split(b":")[1])
                    if len(rest) < n and data:
                        pending[s] = buf
                        continue
                    ok += head.startswith(b"HTTP/1.1 200")
                sel.unregister(s)
                del pending[s]
            else:
                pending[s] = buf
    sel.close()
    return ok, len(socks) - ok


def open_idle(addr, n, batch=500):
    """n new keep-alive connections that have each completed one request."""
    socks = []
    while len(socks) < n:
        k = min(batch, n - len(socks))
        fresh = []
        for _ in range(k):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(True)
            s.connect(addr)
            s.setblocking(False)
            fresh.append(s)
        ok, bad = one_request_each(fresh)
        if bad:
            raise RuntimeError(f"{bad} of {k} new connections got no answer "
                               f"(with {len(socks)} open)")
        socks += fresh
        if len(socks) % 5000 == 0 or len(socks) == n:
            log(f"  {len(socks)} idle connections open")
    return socks
