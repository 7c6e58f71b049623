"""The HTTP front end with many clients: idle keep-alive connections cost the request path
nothing, connection limits answer 503 with Retry-After, and the HTTP/1.1 details clients rely on
(pipelining, 100 Continue, HTTP/1.0, HEAD) work."""
import base64
import socket
import time

import requests

from idleconns import one_request_each, open_idle, raise_nofile

IDLE = 5000


def recv_answer(s, timeout=5):
    """One whole answer (headers and a Content-Length body) from a blocking socket."""
    s.settimeout(timeout)
    buf = b""
    while b"\r\n\r\n" not in buf:
        d = s.recv(65536)
        if not d:
            return buf
        buf += d
    head, _, rest = buf.partition(b"\r\n\r\n")
    n = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            n = int(line.split(b":")[1])
    while len(rest) < n:
        d = s.recv(65536)
        if not d:
            break
        rest += d
    return head + b"\r\n\r\n" + rest[:n], rest[n:]


def test_writes_and_reads_go_on_beside_5000_idle_connections(make_cluster):
    raise_nofile(IDLE + 1024)
    c = make_cluster(nodes=3)
    lid = c.wait_leader()
    host, port = c.http(lid).split(":")
    idle = open_idle((host, int(port)), IDLE)
    try:
        s = requests.Session()
        value = base64.b64encode(b"v" * 64).decode()
        t0 = time.time()
        for k in range(300):
            r = s.post(f"http://{c.http(lid)}/kv/set", json={"key": f"idle/{k}", "value": value},
                       timeout=5)
            assert r.status_code == 200, r.text
            r = s.get(f"http://{c.http(lid)}/kv/get/idle/{k}", timeout=5)
            assert r.status_code == 200 and r.json()["value"] == value, r.text
        took = time.time() - t0
        # 600 requests one after another: milliseconds each, not a scan of 5,000 connections
        assert took < 30, took
        st = requests.get(f"http://{c.http(lid)}/stat", timeout=5).json()
        assert st["raft_status"]["leader"] == lid
        ok, bad = one_request_each(idle)
        assert (ok, bad) == (IDLE, 0)
    finally:
        for x in idle:
            x.close()


def test_connection_limits_answer_503_with_retry_after(make_cluster):
    c = make_cluster(nodes=1, extra={"http": {"max_connections": 40, "per_ip_connections": 30}})
    c.wait_leader()
    host, port = c.http(1).split(":")
    # the connections wait_leader used are closed by the client; the node counts each until it
    # reads its end, which can come after the first of these new ones
    deadline = time.time() + 5
    while True:
        try:
            held = open_idle((host, int(port)), 30)
            break
        except RuntimeError:
            if time.time() > deadline:
                raise
            time.sleep(0.1)
    try:
        # the 31st connection from this address is refused, with a reason and a retry hint
        s = socket.create_connection((host, int(port)))
        ans = s.recv(4096)
        s.close()
        assert ans.startswith(b"HTTP/1.1 503") and b"Retry-After: 1" in ans, ans
        assert b"too many open connections from this address" in ans, ans
        # closing one gives its slot back
        held.pop().close()
        deadline = time.time() + 5
        while True:
            s = socket.create_connection((host, int(port)))
            s.sendall(b"GET /livez HTTP/1.1\r\nHost: x\r\n\r\n")
            ans, _ = recv_answer(s)
            s.close()
            if ans.startswith(b"HTTP/1.1 200") or time.time() > deadline:
                break
            time.sleep(0.1)
        assert ans.startswith(b"HTTP/1.1 200"), ans
        ok, bad = one_request_each(held)
        assert bad == 0
    finally:
        for x in held:
            x.close()


def test_total_connection_limit(make_cluster):
    c = make_cluster(nodes=1, extra={"http": {"max_connections": 20}})
    c.wait_leader()
    host, port = c.http(1).split(":")
    held = []
    try:
        # the node's own connections (its version poll, this test's client) count too
        for _ in range(25):
            s = socket.create_connection((host, int(port)))
            s.sendall(b"GET /livez HTTP/1.1\r\nHost: x\r\n\r\n")
            ans, _ = recv_answer(s)
            held.append(s)
            if not ans.startswith(b"HTTP/1.1 200"):
                break
        assert ans.startswith(b"HTTP/1.1 503") and b"Retry-After: 1" in ans, ans
        assert b"the node has too many open connections" in ans, ans
        assert 17 <= len(held) - 1 <= 20, len(held)
    finally:
        for x in held:
            x.close()


def test_pipelined_requests_are_answered_in_order(cluster3):
    lid = cluster3.wait_leader()
    host, port = cluster3.http(lid).split(":")
    s = socket.create_connection((host, int(port)))
    value = base64.b64encode(b"pipelined").decode()
    body = ('{"key":"pipe","value":"%s"}' % value).encode()
    s.sendall(b"POST /kv/set HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body +
              b"GET /kv/get/pipe HTTP/1.1\r\nHost: x\r\n\r\n"
              b"GET /nowhere HTTP/1.1\r\nHost: x\r\n\r\n")
    first, rest = recv_answer(s)
    assert first.startswith(b"HTTP/1.1 200"), first
    buf = rest
    while buf.count(b"HTTP/1.1") < 2 or not buf.endswith(b"}"):
        d = s.recv(65536)
        if not d:
            break
        buf += d
    second, _, third = buf.partition(b"HTTP/1.1 404")
    assert second.startswith(b"HTTP/1.1 200") and value.encode() in second, buf
    assert b"404 page not found: /nowhere" in third, buf
    s.close()


def test_expect_100_continue_http10_and_head(cluster3):
    lid = cluster3.wait_leader()
    host, port = cluster3.http(lid).split(":")
    # a client that waits for 100 Continue before sending its body (curl does for large bodies)
    s = socket.create_connection((host, int(port)), timeout=5)
    body = b'{"key":"expect","value":"on"}'
    s.sendall(b"POST /config/set HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              b"Expect: 100-continue\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n")
    assert s.recv(100) == b"HTTP/1.1 100 Continue\r\n\r\n"
    s.sendall(body)
    ans, _ = recv_answer(s)
    assert ans.startswith(b"HTTP/1.1 200"), ans
    s.close()
    # HTTP/1.0 without keep-alive: answered and closed
    s = socket.create_connection((host, int(port)), timeout=5)
    s.sendall(b"GET /config/get?key=expect HTTP/1.0\r\n\r\n")
    buf = b""
    while True:
        d = s.recv(4096)
        if not d:
            break
        buf += d
    assert buf.startswith(b"HTTP/1.1 200") and b"Connection: close" in buf, buf
    assert buf.endswith(b'"on"'), buf
    s.close()
    # HEAD: the headers of a GET, no body
    r = requests.head(f"http://{cluster3.http(lid)}/stat", timeout=5)
    assert r.status_code in (200, 405), r.status_code
    assert r.content == b""


def test_garbage_and_oversized_headers_are_refused(cluster3):
    host, port = cluster3.http(1).split(":")
    s = socket.create_connection((host, int(port)), timeout=5)
    s.sendall(b"GET /stat HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 100000 + b"\r\n\r\n")
    ans = s.recv(4096)
    assert ans.startswith(b"HTTP/1.1 431") and b"Connection: close" in ans, ans[:200]
    s.close()
    s = socket.create_connection((host, int(port)), timeout=5)
    s.sendall(b"G\x00T /stat HTTP/1.1\r\n\r\n")
    ans = s.recv(4096)
    assert ans.startswith(b"HTTP/1.1 400") and b"malformed HTTP request" in ans, ans
    s.close()
    assert requests.get(f"http://{cluster3.http(1)}/livez", timeout=5).status_code == 200
