"""Quotas of the replicated stores and of snapshot dumps, and what /service/register refuses
(issue "hardening": /snapshot/dump unbounded, no quotas on config and services, invalid UTF-8 in
service names, the KV quota counted without per-entry overhead)."""
import base64
import socket
import time

import requests

SVC = {"cluster_id": 1, "name": "proxy", "host": "http://127.0.0.1:9600", "idc": "z0", "timeout": 30}
LIMITS = {"kv_max_entries": 100, "kv_max_bytes": 3000, "service_max_entries": 5,
          "max_concurrent_dumps": 1, "service_collect_after_s": 1}


def test_kv_and_config_quota_counts_entries_and_overhead(make_cluster):
    c = make_cluster(nodes=1, extra={"limits": LIMITS})
    # empty values are not free: each entry is charged 64 bytes beyond its key and value
    stored = 0
    for i in range(60):
        r = c.post(1, f"/kv/set/k{i:02d}", {"value": ""})
        if r.status_code != 200:
            assert r.status_code == 400 and "kv store is full" in r.json()["error"]
            break
        stored += 1
    assert stored == 3000 // (3 + 64)
    # the config routes share the store and its quota; replacing and deleting stay possible
    r = c.post(1, "/config/set", {"key": "newkey", "value": "v"})
    assert r.status_code == 400 and "kv store is full" in r.json()["error"]
    assert c.post(1, "/kv/set/k00", {"value": ""}).status_code == 200
    assert c.post(1, "/kv/delete/k00").status_code == 200
    assert c.post(1, "/config/set", {"key": "newkey", "value": "v"}).status_code == 200
    # the entry count holds too
    c2 = make_cluster(nodes=1, extra={"limits": {"kv_max_entries": 5}})
    codes = [c2.post(1, f"/kv/set/x{i}", {"value": "dg=="}).status_code for i in range(7)]
    assert codes == [200] * 5 + [400] * 2


def test_service_registry_quota_utf8_and_host(make_cluster):
    c = make_cluster(nodes=1, extra={"limits": LIMITS})
    for i in range(5):
        assert c.post(1, "/service/register", dict(SVC, name=f"s{i}")).status_code == 200
    r = c.post(1, "/service/register", dict(SVC, name="s5"))
    assert r.status_code == 400 and "service registry is full" in r.json()["error"]
    assert c.post(1, "/service/register", dict(SVC, name="s0", timeout=60)).status_code == 200
    # a name with invalid UTF-8 is refused, so /service/list stays valid JSON for every client
    body = b'{"cluster_id":1,"name":"svc\xff\xfe","host":"http://127.0.0.1:9600","idc":"z0","timeout":30}'
    r = requests.post(c.url(1, "/service/register"), data=body, timeout=5)
    assert r.status_code == 400
    r = c.get(1, "/service/list")
    r.content.decode("utf-8")
    assert len(r.json()["nodes"]) == 5
    # nothing but a port-like word may follow the host's colon
    for host in ("http://127.0.0.1:80/path?q", "http://127.0.0.1:80@evil", "http://127.0.0.1:8 0",
                 "gopher://127.0.0.1:70", "http://127.0.0.1:80\r\nX: y"):
        r = c.post(1, "/service/register", dict(SVC, name="s1", host=host))
        assert r.status_code == 925, host


def test_expired_services_are_collected(make_cluster):
    c = make_cluster(nodes=1, extra={"limits": LIMITS})
    for i in range(5):
        assert c.post(1, "/service/register", dict(SVC, name=f"e{i}", timeout=-1)).status_code == 200
    # expired at once, unregistered by the leader once service_collect_after_s passed
    deadline = time.time() + 10
    while time.time() < deadline and c.get(1, "/service/list").json()["nodes"]:
        time.sleep(0.2)
    assert c.get(1, "/service/list").json()["nodes"] is None
    # the registry has room again
    assert c.post(1, "/service/register", dict(SVC, name="live")).status_code == 200


def test_concurrent_dumps_are_bounded(make_cluster):
    c = make_cluster(nodes=1, extra={"limits": {"max_concurrent_dumps": 1}})
    big = base64.b64encode(bytes(1 << 20)).decode()
    for i in range(12):  # 12 MiB: more than the socket buffers hold
        assert c.post(1, f"/kv/set/d{i:02d}", {"value": big}).status_code == 200
    host, port = c.http(1).rsplit(":", 1)
    # a reader that asks for a dump and never reads holds its slot
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect((host, int(port)))
    s.sendall(b"GET /snapshot/dump HTTP/1.1\r\nHost: x\r\n\r\n")
    time.sleep(0.5)
    r = c.get(1, "/snapshot/dump")
    assert r.status_code == 503 and "snapshot dumps" in r.json()["error"]
    s.close()
    deadline = time.time() + 10
    while time.time() < deadline:
        r = c.get(1, "/snapshot/dump")
        if r.status_code == 200:
            break
        time.sleep(0.2)
    assert r.status_code == 200 and r.headers["Raft-Snapshot-Index"]


def test_disk_and_node_tables_have_quotas(make_cluster):
    """Disks and blobnodes are replicated stores a client grows too: past limits.disk_max_* and
    limits.node_max_* a new one is refused with 400 before anything is proposed, while a node
    that registers again (the same host) gets its id back."""
    c = make_cluster(nodes=3, extra={"limits": {"disk_max_entries": 3, "node_max_entries": 2}})
    nodes = []
    for k in range(2):
        r = c.post(1 + k, "/node/add", {"cluster_id": 1, "disk_type": 1, "idc": "z0",
                                        "rack": "r", "host": f"http://10.7.0.{k}:8899",
                                        "role": 1})
        assert r.status_code == 200, r.text
        nodes.append(r.json()["node_id"])
    r = c.post(3, "/node/add", {"cluster_id": 1, "disk_type": 1, "idc": "z0", "rack": "r",
                                "host": "http://10.7.0.9:8899", "role": 1})
    assert r.status_code == 400 and "node table is full" in r.json()["error"], r.text
    r = c.post(1, "/node/add", {"cluster_id": 1, "disk_type": 1, "idc": "z0", "rack": "r",
                                "host": "http://10.7.0.0:8899", "role": 1})
    assert r.json() == {"node_id": nodes[0]}
    for k in range(4):
        d = c.post(1, "/diskid/alloc", None, headers={"Content-Length": "0"}).json()["disk_id"]
        body = {"cluster_id": 1, "idc": "z0", "rack": "r", "host": "", "path": f"/q{k}",
                "status": 1, "readonly": False, "create_time": "2025-01-01T00:00:00Z",
                "last_update_time": "2025-01-01T00:00:00Z", "disk_id": d, "used": 0,
                "free": 1 << 30, "size": 1 << 30, "node_id": nodes[k % 2]}
        r = c.post(2, "/disk/add", body)
        if k < 3:
            assert r.status_code == 200, r.text
        else:
            assert r.status_code == 400 and "disk table is full" in r.json()["error"], r.text
    for i in (1, 2, 3):
        assert len(c.get(i, "/disk/list?count=200").json()["disks"]) == 3
