"""Security: request tokens, authenticated raft peers, TLS, and resource limits."""
import base64
import hashlib
import os
import resource
import socket
import struct
import subprocess
import threading
import time

import pytest
import requests

from cmcluster import ROOT, BUILD

SECRET = "s3cret-for-tests"
INTRUDER = os.path.join(ROOT, BUILD, "tests", "tools", "raft_intruder")


def token(path, query="", secret=SECRET, ts=None):
    ts = int(time.time()) if ts is None else ts
    t = struct.pack("<q", ts)
    return base64.urlsafe_b64encode(t + hashlib.md5(path.encode() + query.encode() + t + secret.encode()).digest()).decode()


def authed(c, node, method, path, body=None, secret=SECRET, **kw):
    p, _, q = path.partition("?")
    headers = kw.pop("headers", {})
    headers["BLOB-STORE-AUTH-TOKEN"] = token(p, q, secret)
    if method == "GET":
        return c.get(node, path, headers=headers, **kw)
    return c.post(node, path, body, headers=headers, **kw)


AUTH = {"auth": {"enable_auth": True, "secret": SECRET, "max_age_s": 300}}

ROUTES = [  # (method, path, body) one per route group
    ("GET", "/config/get?key=balance", None),
    ("GET", "/config/list", None),
    ("POST", "/config/set", {"key": "sec", "value": "1"}),
    ("POST", "/config/delete?key=sec", None),
    ("POST", "/bid/alloc", {"count": 1}),
    ("POST", "/diskid/alloc", None),
    ("GET", "/stat", None),
    ("POST", "/leadership/transfer", {"peer_id": 99}),
    ("POST", "/member/remove", {"peer_id": 99}),
    ("GET", "/internal/member?id=1", None),
    ("GET", "/dashboard/data", None),
    ("GET", "/dashboard/history", None),
    ("GET", "/log/level", None),
    ("GET", "/no/such/route", None),
]


def test_tokens_on_every_route_group(make_cluster):
    c = make_cluster(nodes=3, extra=AUTH)
    lid = c.wait_leader()
    follower = next(i for i in (1, 2, 3) if i != lid)
    for node in (lid, follower):
        for method, path, body in ROUTES:
            p, _, q = path.partition("?")
            cases = {
                "missing": {},
                "malformed": {"BLOB-STORE-AUTH-TOKEN": "not*base64!"},
                "short": {"BLOB-STORE-AUTH-TOKEN": base64.urlsafe_b64encode(b"x" * 12).decode()},
                "wrong secret": {"BLOB-STORE-AUTH-TOKEN": token(p, q, "other")},
                "wrong path": {"BLOB-STORE-AUTH-TOKEN": token(p + "x", q)},
                "stale": {"BLOB-STORE-AUTH-TOKEN": token(p, q, ts=int(time.time()) - 3600)},
            }
            for name, hdrs in cases.items():
                r = (c.get(node, path, headers=hdrs, auth=False) if method == "GET"
                     else c.post(node, path, body, headers=hdrs, auth=False))
                assert r.status_code == 403, (name, method, path, r.status_code, r.text)
                assert r.json()["error"].startswith("auth token"), r.text
            r = authed(c, node, method, path, body)
            assert r.status_code != 403, (method, path, r.text)
            r = (c.get(node, path) if method == "GET" else c.post(node, path, body))
            assert r.status_code != 403, (method, path, r.text)
    # health probes and the metrics scrape need no token
    for i in (1, 2, 3):
        assert c.get(i, "/livez", auth=False).status_code == 200
        assert c.get(i, "/readyz", auth=False).status_code == 200
        assert c.get(i, "/metrics", auth=False).status_code == 200
    # writes forwarded from a follower and linearizable reads on followers carry valid tokens
    assert authed(c, follower, "POST", "/config/set", {"key": "fwd", "value": "ok"}).status_code == 200
    for i in (1, 2, 3):
        assert authed(c, i, "GET", "/config/get?key=fwd").json() == "ok"


def raft_view(c):
    out = {}
    for i in c.alive():
        st = c.stat(i)["raft_status"]
        out[i] = (st["term"], st["leader"])
    return out


def run_intruder(c, target, claimed_id, term, tmp_path):
    work = tmp_path / f"intruder-{target}-{claimed_id}"
    work.mkdir()
    with socket.socket() as probe:  # a port nobody uses right now
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    p = subprocess.run([INTRUDER, str(target), c.raft_addr(target), str(claimed_id),
                        f"127.0.0.1:{port}", str(term), str(work)], capture_output=True, timeout=30)
    return p.returncode, (p.stdout + p.stderr).decode()


def test_stranger_on_raft_port_changes_nothing(make_cluster, tmp_path):
    c = make_cluster(nodes=3, extra={"auth": {"peer_secret": SECRET}})
    lid = c.wait_leader()
    assert c.post(1, "/config/set", {"key": "before", "value": "1"}).status_code == 200
    before = raft_view(c)
    commit_before = c.stat(lid)["raft_status"]["commit"]
    members_before = sorted(p["id"] for p in c.stat(lid)["raft_status"]["peers"])
    term = max(t for t, _ in before.values()) + 1000
    for target in (1, 2, 3):
        for claimed in (77, 1 + target % 3):  # a made-up id, and a real member's id
            rc, out = run_intruder(c, target, claimed, term, tmp_path)
            assert rc == 0, out
    time.sleep(1.5)
    after = raft_view(c)
    assert after == before, (before, after)
    st = c.stat(lid)["raft_status"]
    assert sorted(p["id"] for p in st["peers"]) == members_before
    assert st["commit"] == commit_before  # no entry was written by anyone
    assert c.get(2, "/config/get?key=before").json() == "1"
    logs = "".join(c.log_text(i) for i in (1, 2, 3))
    assert "dropped a raft connection" in logs
    # the cluster itself still works
    assert c.post(3, "/config/set", {"key": "after", "value": "2"}).status_code == 200


def test_without_peer_auth_the_same_stranger_disrupts(make_cluster, tmp_path):
    """Control for the test above: it would fail without authenticated peers."""
    c = make_cluster(nodes=3)
    lid = c.wait_leader()
    before = raft_view(c)
    term = max(t for t, _ in before.values()) + 1000
    rc, out = run_intruder(c, lid, 77, term, tmp_path)
    assert rc == 0, out
    time.sleep(1.0)
    assert max(t for t, _ in raft_view(c).values()) >= term


def test_mismatched_peer_secret_cannot_join(make_cluster):
    c = make_cluster(nodes=3, start=False, extra={"auth": {"peer_secret": SECRET}})
    c.configs[3]["auth"] = {"peer_secret": "a-different-secret"}
    c.write_config(3)
    c.start_all(wait_leader=False)
    lid = c.wait_leader(among=[1, 2])
    assert c.post(lid, "/config/set", {"key": "k", "value": "v"}).status_code == 200
    time.sleep(1.0)
    st = c.stat(3)["raft_status"]
    assert st["leader"] == 0 and st["commit"] < c.stat(lid)["raft_status"]["commit"]
    assert "peer secret" in c.log_text(3) or "dropped" in c.log_text(1) + c.log_text(2)


def make_pki(d):
    """A CA, a server certificate for 127.0.0.1, and a client certificate."""
    def run(*args):
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=d)
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
        "-days", "2", "-subj", "/CN=clustermgr test CA")
    for name, ext in (("server", "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth"),
                      ("client", "extendedKeyUsage=clientAuth")):
        with open(os.path.join(d, f"{name}.ext"), "w") as f:
            f.write(ext + "\n")
        run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
            "-subj", f"/CN={name}")
        run("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", f"{name}.pem", "-days", "2", "-extfile", f"{name}.ext")
    return {k: os.path.join(d, f"{k}") for k in ("ca.pem", "server.pem", "server.key", "client.pem", "client.key")}


class TlsSession:
    """requests with a CA and client certificate passed on every call."""

    def __init__(self, ca, cert=None):
        self.s, self.kw = requests.Session(), {"verify": ca}
        if cert:
            self.kw["cert"] = cert

    def get(self, url, **kw):
        return self.s.get(url, **self.kw, **kw)

    def post(self, url, **kw):
        return self.s.post(url, **self.kw, **kw)


def tls_extra(pki, client_ca=False):
    t = {"cert_file": pki["server.pem"], "key_file": pki["server.key"], "ca_file": pki["ca.pem"]}
    if client_ca:
        t["client_ca_file"] = pki["ca.pem"]
    return {"tls": t, "raft_config": {"raft_node_config": {"node_protocol": "https://"}}}


def test_tls_cluster_serves_https_only(make_cluster, tmp_path):
    pki = make_pki(str(tmp_path))
    c = make_cluster(nodes=3, start=False, extra=tls_extra(pki))
    for i in range(1, c.max_nodes + 1):
        c.configs[i]["raft_config"]["raft_node_config"]["node_protocol"] = "https://"
        c.write_config(i)
    for i in (1, 2, 3):
        c.start(i, wait=False)
    # verify= per request: REQUESTS_CA_BUNDLE in the environment overrides Session.verify
    s = TlsSession(pki["ca.pem"])
    url = lambda i, p: f"https://{c.http(i)}{p}"  # noqa: E731
    end = time.time() + 20
    lid, last = 0, None
    while time.time() < end and not lid:
        try:
            lid = s.get(url(1, "/stat"), timeout=2).json()["raft_status"]["leader"]
        except requests.RequestException as e:
            last = e
        time.sleep(0.1)
    assert lid, last
    time.sleep(0.5)
    follower = next(i for i in (1, 2, 3) if i != lid)
    # forwarding and read index between nodes go over https too
    r = s.post(url(follower, "/config/set"), json={"key": "tls", "value": "on"}, timeout=10)
    assert r.status_code == 200, r.text
    for i in (1, 2, 3):
        assert s.get(url(i, "/config/get?key=tls"), timeout=10).json() == "on"
    # plain http is refused
    with pytest.raises(requests.RequestException):
        requests.get(f"http://{c.http(1)}/stat", timeout=3)
    # an untrusted certificate is refused by a verifying client
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(url(1, "/stat"), timeout=3, verify="/etc/ssl/certs/ca-certificates.crt")


def test_mutual_tls_requires_client_certificate(make_cluster, tmp_path):
    pki = make_pki(str(tmp_path))
    c = make_cluster(nodes=3, start=False, extra=tls_extra(pki, client_ca=True))
    for i in (1, 2, 3):
        c.start(i, wait=False)
    s = TlsSession(pki["ca.pem"], (pki["client.pem"], pki["client.key"]))
    url = lambda i, p: f"https://{c.http(i)}{p}"  # noqa: E731
    end = time.time() + 20
    ok = False
    while time.time() < end and not ok:
        try:
            ok = s.get(url(1, "/stat"), timeout=2).json()["raft_status"]["leader"] != 0
        except requests.RequestException:
            pass
        time.sleep(0.1)
    assert ok
    lid = s.get(url(1, "/stat"), timeout=2).json()["raft_status"]["leader"]
    follower = next(i for i in (1, 2, 3) if i != lid)
    assert s.post(url(follower, "/config/set"), json={"key": "m", "value": "tls"}, timeout=10).status_code == 200
    assert s.get(url(follower, "/config/get?key=m"), timeout=10).json() == "tls"
    try:
        r = requests.get(url(1, "/stat"), timeout=3, verify=pki["ca.pem"])
        assert r.status_code == 403
    except requests.exceptions.SSLError:
        pass  # refused during the handshake: just as good


def raise_fd_limit(n):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < n:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(n, hard), hard))


def test_slow_and_oversized_clients_do_not_starve_others(make_cluster):
    raise_fd_limit(8192)
    c = make_cluster(nodes=3)
    host, port = c.http(1).split(":")
    slow = []
    for k in range(1000):
        s = socket.create_connection((host, int(port)), timeout=5)
        # headers that never end, or a body promised and never sent
        if k % 2:
            s.sendall(b"GET /stat HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        else:
            s.sendall(b"POST /config/set HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
        slow.append(s)
    big_codes = []
    for _ in range(20):
        s = socket.create_connection((host, int(port)), timeout=5)
        s.sendall(b"POST /config/set HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000000\r\n\r\n")
        big_codes.append(s.recv(200).split(b" ")[1])
        s.close()
    assert set(big_codes) == {b"413"}
    lat = []
    sess = requests.Session()
    for k in range(200):
        t0 = time.time()
        r = sess.post(c.url(1, "/config/set"), json={"key": f"n{k}", "value": "x"}, timeout=5)
        lat.append(time.time() - t0)
        assert r.status_code == 200
        assert sess.get(c.url(1, "/config/get?key=balance"), timeout=5).status_code == 200
    lat.sort()
    assert lat[int(len(lat) * 0.99)] < 0.5, f"p99 {lat[int(len(lat) * 0.99)]:.3f}s"
    for s in slow:
        s.close()


def test_queue_limit_answers_503_instead_of_growing(make_cluster):
    c = make_cluster(nodes=3, extra={"http": {"max_queued_requests": 2}})
    lid = c.wait_leader()
    follower = next(i for i in (1, 2, 3) if i != lid)
    codes = []
    lock = threading.Lock()

    def hammer():
        s = requests.Session()
        for _ in range(40):
            r = s.get(c.url(follower, "/config/get?key=balance"), timeout=10)
            with lock:
                codes.append(r.status_code)
            if r.status_code == 503:
                assert r.json()["error"].startswith("the node is overloaded")
                assert r.headers["Retry-After"] == "1"

    ts = [threading.Thread(target=hammer) for _ in range(16)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert 503 in codes and 200 in codes
    assert c.get(follower, "/readyz").status_code == 200
