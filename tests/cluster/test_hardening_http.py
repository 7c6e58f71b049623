"""Hardening of the HTTP front end: tokens that pin the request on our own routes, UTF-8 in error
bodies and audit lines, the TCP peer in the request log, the connection timeout, the forwarding hop
count, and the budget of buffered request bodies (docs/security.md, "HTTP front end")."""
import base64
import hashlib
import json
import os
import select
import socket
import struct
import time

import pytest
import requests

from cmcluster import Cluster

SECRET = "hardening-secret"
TIMEOUT_S = 3


def token(path, query="", secret=SECRET):
    """The CubeFS token: md5 over path || raw query || ts || secret (path as bytes)."""
    p = path if isinstance(path, bytes) else path.encode()
    t = struct.pack("<q", int(time.time()))
    return base64.urlsafe_b64encode(t + hashlib.md5(p + query.encode() + t + secret.encode())
                                    .digest()).decode()


def bound_token(method, path, query="", secret=SECRET):
    """The method-bound token of our multi-method paths (auth.h)."""
    t = struct.pack("<q", int(time.time()))
    p = path.encode()
    d = hashlib.md5(method.encode() + b"\0" + struct.pack("<I", len(p)) + p + query.encode() + t +
                    secret.encode()).digest()
    return base64.urlsafe_b64encode(t + d).decode()


def b64(s):
    return base64.b64encode(s.encode()).decode()


@pytest.fixture(scope="module")
def c():
    cl = Cluster(nodes=1, extra={"auth": {"enable_auth": True, "secret": SECRET, "max_age_s": 300},
                                 "http": {"connection_timeout_s": TIMEOUT_S}})
    cl.configs[1]["auditlog"] = {"logdir": os.path.join(cl.dir, "audit1")}
    cl.write_config(1)
    cl.start_all()
    yield cl
    cl.shutdown()
    assert not cl.sanitizer_reports()


def raw(c, data, timeout=5):
    """Send raw bytes on a fresh connection; return the whole answer."""
    host, port = c.http(1).split(":")
    s = socket.create_connection((host, int(port)), timeout=timeout)
    s.sendall(data)
    out = b""
    try:
        while True:
            b = s.recv(65536)
            if not b:
                break
            out += b
            if b"\r\n\r\n" in out:
                head, _, body = out.partition(b"\r\n\r\n")
                cl = [ln for ln in head.split(b"\r\n") if ln.lower().startswith(b"content-length:")]
                if cl and len(body) >= int(cl[0].split(b":")[1]):
                    break
    finally:
        s.close()
    return out


def kv_exists(c, key):
    return c.get(1, "/kv/get/" + key).status_code == 200


def test_token_does_not_move_between_path_key_and_query(c):
    for k in ("ab", "abc", "a"):
        assert c.post(1, "/kv/set/" + k, {"value": b64("v")}).status_code == 200
    # a token for POST /kv/delete/abc replayed on /kv/delete/ab?c (same digest input)
    t = token("/kv/delete/abc")
    r = requests.post(c.url(1, "/kv/delete/ab?c"), headers={"BLOB-STORE-AUTH-TOKEN": t},
                      timeout=5)
    assert r.status_code == 403 and r.json()["error"].startswith("auth token"), r.text
    assert kv_exists(c, "ab")
    # a token for /kv/set/abc replayed on /kv/set/a?bc
    r = requests.post(c.url(1, "/kv/set/a?bc"), json={"value": b64("evil")},
                      headers={"BLOB-STORE-AUTH-TOKEN": token("/kv/set/abc")}, timeout=5)
    assert r.status_code == 403, r.text
    assert base64.b64decode(c.get(1, "/kv/get/a").json()["value"]) == b"v"
    # ... or on /kv/set?/abc, the route that takes any key from the (unsigned) body
    r = requests.post(c.url(1, "/kv/set?/abc"), json={"key": "other", "value": b64("evil")},
                      headers={"BLOB-STORE-AUTH-TOKEN": token("/kv/set/abc")}, timeout=5)
    assert r.status_code == 403, r.text
    assert not kv_exists(c, "other")
    # a read token of /disk/droppinglist on the write /disk/drop?pinglist
    r = requests.post(c.url(1, "/disk/drop?pinglist"), json={"disk_id": 1},
                      headers={"BLOB-STORE-AUTH-TOKEN": token("/disk/droppinglist")}, timeout=5)
    assert r.status_code == 403, r.text
    # the requests the tokens were made for still work; a '?' in a key travels encoded
    r = requests.post(c.url(1, "/kv/delete/abc"), headers={"BLOB-STORE-AUTH-TOKEN": t}, timeout=5)
    assert r.status_code == 200, r.text
    assert not kv_exists(c, "abc") and kv_exists(c, "ab")
    r = requests.post(c.url(1, "/kv/set/q%3Fk"), json={"value": b64("x")},
                      headers={"BLOB-STORE-AUTH-TOKEN": token("/kv/set/q?k")}, timeout=5)
    assert r.status_code == 200, r.text


def test_get_token_does_not_authorize_other_methods(c):
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    r = requests.post(c.url(1, "/log/level"), data="level=debug",
                      headers={"BLOB-STORE-AUTH-TOKEN": token("/log/level"), **form}, timeout=5)
    assert r.status_code == 403, r.text
    assert c.get(1, "/log/level").json() == {"level": "info"}
    # a method-bound token of another method does not do either
    r = requests.post(c.url(1, "/log/level"), data="level=debug",
                      headers={"BLOB-STORE-AUTH-TOKEN": bound_token("GET", "/log/level"), **form},
                      timeout=5)
    assert r.status_code == 403, r.text
    for level in ("debug", "info"):
        r = requests.post(c.url(1, "/log/level"), data="level=" + level,
                          headers={"BLOB-STORE-AUTH-TOKEN": bound_token("POST", "/log/level"),
                                   **form}, timeout=5)
        assert r.status_code == 200, r.text
        assert c.get(1, "/log/level").json() == {"level": level}


def strict_json(body):
    return json.loads(body.decode("utf-8"))  # raises on invalid UTF-8


def test_error_bodies_are_valid_utf8(c):
    cases = [("/disk/info", "disk_id=%ff"),                   # raw byte echoed
             ("/disk/info", "disk_id=" + "1" * 63 + "%C3%A9"),  # cut at 64 bytes inside a char
             ("/config/get", "key=%C3")]                         # truncated sequence
    for path, q in cases:
        ans = raw(c, f"GET {path}?{q} HTTP/1.1\r\nHost: x\r\nBLOB-STORE-AUTH-TOKEN: "
                     f"{token(path, q)}\r\nConnection: close\r\n\r\n".encode())
        head, _, body = ans.partition(b"\r\n\r\n")
        assert head.split(b" ")[1] in (b"400", b"404"), ans
        strict_json(body)
    # a 404 message cuts the path at 200 bytes, here inside a 2-byte character
    path = "/" + "a" * 198 + "\u00e9"
    ans = raw(c, b"GET /" + b"a" * 198 + b"%C3%A9 HTTP/1.1\r\nHost: x\r\nBLOB-STORE-AUTH-TOKEN: " +
              token(path).encode() + b"\r\nConnection: close\r\n\r\n")
    head, _, body = ans.partition(b"\r\n\r\n")
    assert head.split(b" ")[1] == b"404", ans
    assert strict_json(body)["error"].startswith("404 page not found: /aaa")
    # the same for a raw invalid byte in the path
    ans = raw(c, b"GET /x%FF HTTP/1.1\r\nHost: x\r\nBLOB-STORE-AUTH-TOKEN: " +
              token(b"/x\xff").encode() + b"\r\nConnection: close\r\n\r\n")
    assert ans.split(b" ")[1] == b"404", ans
    strict_json(ans.partition(b"\r\n\r\n")[2])


def audit_lines(c):
    path = os.path.join(c.dir, "audit1", "audit.log")
    if not os.path.exists(path):
        return []
    with open(path, "rb") as f:
        return [json.loads(ln.decode("utf-8")) for ln in f.read().splitlines() if ln.strip()]


def test_request_log_names_the_tcp_peer_next_to_the_claimed_client(c):
    """client= is what X-Real-Ip / X-Forwarded-For claim; the TCP peer is logged beside it."""
    for n, hdrs in enumerate(({"X-Real-Ip": "10.9.9.9"},
                              {"X-Forwarded-For": "10.8.8.8, 10.7.7.7"})):
        r = c.post(1, "/config/set", {"key": "peer"}, headers={"X-Request-Id": f"peer-{n}", **hdrs})
        assert r.status_code == 400  # a failed write is logged at info
    # the line is written after the answer went out: wait for it
    for n, client in enumerate(("10.9.9.9", "10.8.8.8")):
        deadline = time.time() + 10
        while True:
            lines = [ln for ln in c.log_text(1).splitlines() if f"req=peer-{n} " in ln]
            if lines or time.time() > deadline:
                break
            time.sleep(0.05)
        assert lines, f"no request log line for peer-{n}"
        assert lines[0].endswith(f"client={client} peer=127.0.0.1"), lines[0]


def test_audit_lines_are_utf8_whatever_the_client_sends(c):
    hdrs = {"X-Request-Id": b"raw-\xff\xfe-id", "X-Real-Ip": b"10.0.0.\xc3"}
    assert c.post(1, "/config/set", {"key": "aud", "value": "1"}, headers=hdrs).status_code == 200
    deadline = time.time() + 10
    while time.time() < deadline:
        a = {x["req_id"]: x for x in audit_lines(c)}  # decodes strictly
        if "raw-\ufffd\ufffd-id" in a:
            break
        time.sleep(0.1)
    assert a["raw-\ufffd\ufffd-id"]["client"] == "10.0.0.\ufffd"


def test_connection_timeout_is_the_configured_one(c):
    host, port = c.http(1).split(":")
    s = socket.create_connection((host, int(port)), timeout=TIMEOUT_S + 5)
    t0 = time.time()
    s.sendall(b"GET /stat HTTP/1.1\r\nHost: x\r\nX-Unfinished: ")
    try:
        got = s.recv(100)
    except socket.timeout:
        got = None
    took = time.time() - t0
    s.close()
    assert got == b"" and took < TIMEOUT_S + 2, (got, took)


def test_hops_header_is_a_small_non_negative_integer(c):
    for bad in ("-1", "-2147483648", "99999999999999999999", "1x", "", "1000"):
        r = c.post(1, "/config/set", {"key": "hop", "value": "1"},
                   headers={"X-Clustermgr-Hops": bad})
        assert r.status_code == 400 and "X-Clustermgr-Hops" in r.json()["error"], (bad, r.text)
    r = c.post(1, "/config/set", {"key": "hop", "value": "1"}, headers={"X-Clustermgr-Hops": "1"})
    assert r.status_code == 200, r.text


def test_buffered_request_bodies_have_a_budget(c):
    host, port = c.http(1).split(":")
    size = 8 << 20  # /kv/set takes bodies of up to 8 MiB; the budget is 256 MiB
    head = (f"POST /kv/set HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {size}\r\nBLOB-STORE-AUTH-TOKEN: {token('/kv/set')}\r\n\r\n").encode()

    def hold():
        s = socket.create_connection((host, int(port)), timeout=1)
        s.sendall(head)
        return s

    # 40 bodies of 8 MiB promised at once: 32 fit the budget, 8 are refused before their
    # bodies are read (which 8 depends on the order the HTTP threads see them)
    held = [hold() for _ in range(40)]
    answers = {}
    try:
        deadline = time.time() + 1.5  # well within the connection timeout
        while time.time() < deadline and len(answers) < len(held):
            ready, _, _ = select.select([s for s in held if s not in answers], [], [], 0.1)
            for s in ready:
                answers[s] = s.recv(200)
    finally:
        for s in held:
            s.close()
    refused = list(answers.values())
    assert len(refused) == 8, answers
    assert all(a.split(b" ")[1] == b"503" and b"Retry-After: 1" in a for a in refused), refused
    # closing the connections gives the budget back
    deadline = time.time() + 10
    while True:
        s = hold()
        try:
            ans = s.recv(200)
        except socket.timeout:
            ans = None
        s.close()
        if ans is None or time.time() > deadline:
            break
        time.sleep(0.2)
    assert ans is None, ans
    assert c.post(1, "/kv/set", {"key": "after", "value": b64("x")}).status_code == 200
