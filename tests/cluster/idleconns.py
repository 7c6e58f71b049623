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
    if hard != resource.RLIM_INFINITY and hard < need:
        try:  # root (CAP_SYS_RESOURCE) may raise its own hard limit up to fs.nr_open
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, need))
            hard = need
        except (ValueError, OSError):
            pass
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


def open_idle(addr, n, batch=500, quiet=False):
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
            for s in fresh + socks:
                s.close()
            raise RuntimeError(f"{bad} of {k} new connections got no answer "
                               f"(with {len(socks)} open)")
        socks += fresh
        if not quiet and (len(socks) % 5000 == 0 or len(socks) == n):
            log(f"  {len(socks)} idle connections open")
    return socks


def _hold(conn, addr):
    """A child process of IdlePool: opens, checks and finally closes its share of idle
    connections on command."""
    socks = []
    try:
        while True:
            cmd, arg = conn.recv()
            if cmd == "open":
                try:
                    raise_nofile(len(socks) + arg + 64)
                    socks += open_idle(addr, arg, quiet=True)
                    conn.send(("ok", len(socks)))
                except Exception as e:  # reported to the parent, which fails the run
                    conn.send(("error", str(e)))
            elif cmd == "check":
                conn.send(("ok", one_request_each(socks, timeout=arg)))
            else:
                break
    finally:
        for s in socks:
            s.close()


class IdlePool:
    """Idle connections held by child processes, `per_child` each, so that the number a
    benchmark opens is not bounded by its own open-file limit (a region's idle connections come
    from many hosts anyway)."""

    def __init__(self, addr, per_child=5000):
        import multiprocessing

        self.addr, self.per_child = addr, per_child
        self.ctx = multiprocessing.get_context("fork")
        self.children = []  # [process, pipe, how many it holds]

    def __len__(self):
        return sum(c[2] for c in self.children)

    def grow(self, n):
        """Open n more idle connections."""
        while n > 0:
            if not self.children or self.children[-1][2] >= self.per_child:
                parent, child = self.ctx.Pipe()
                p = self.ctx.Process(target=_hold, args=(child, self.addr), daemon=True)
                p.start()
                self.children.append([p, parent, 0])
            c = self.children[-1]
            k = min(n, self.per_child - c[2])
            c[1].send(("open", k))
            status, val = c[1].recv()
            if status != "ok":
                raise RuntimeError(f"{val} (with {len(self)} open)")
            c[2] = val
            n -= k
            log(f"  {len(self)} idle connections open")

    def check(self, timeout=120):
        """One request on every idle connection: (answered 200, did not)."""
        ok = bad = 0
        for c in self.children:
            c[1].send(("check", timeout))
        for c in self.children:
            _, (o, b) = c[1].recv()
            ok, bad = ok + o, bad + b
        return ok, bad

    def close(self):
        for p, pipe, _ in self.children:
            try:
                pipe.send(("close", 0))
            except OSError:
                pass
            p.join(timeout=30)
        self.children = []
