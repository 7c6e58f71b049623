"""GET /snapshot/dump (the whole state machine as one checksummed stream, answered locally and
released when the response ends, also on client abort), and backup/restore with cmctl: save a
dump, restore it into the data directories of a fresh 3-node cluster, compare the state."""
import base64
import json
import os
import re
import socket
import subprocess
import time
import urllib.parse
import zlib

import requests

from cmcluster import ROOT, BUILD

CMCTL = os.path.join(ROOT, BUILD, "cmctl")
SAN = "san" in BUILD


def check_stream(body):
    assert body[:8] == b"CMSNAP01"
    assert zlib.crc32(body[:-4]) == int.from_bytes(body[-4:], "big")
    return body


def cmctl(*args, hosts):
    p = subprocess.run([CMCTL, "--host", hosts, *args], capture_output=True, timeout=120)
    return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")


def open_fds(c, i):
    return len(os.listdir(f"/proc/{c.procs[i].pid}/fd"))


def rss_mb(c, i):
    with open(f"/proc/{c.procs[i].pid}/status") as f:
        return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1)) / 1024


def test_dump_headers_format_and_locality(make_cluster):
    c = make_cluster(nodes=3)
    for k in range(20):
        assert c.post(1 + k % 3, "/config/set", {"key": f"k{k}", "value": "v"}).status_code == 200
    c.wait_applied(c.stat(c.wait_leader())["raft_status"]["commit"])
    bodies = set()
    for i in (1, 2, 3):
        applied = c.stat(i)["raft_status"]["applied"]
        r = c.get(i, "/snapshot/dump")
        assert r.status_code == 200
        assert "Content-Length" not in r.headers  # streamed
        assert int(r.headers["Raft-Snapshot-Index"]) >= applied
        assert re.fullmatch(r"snapshot-\d{10}\d{1,5}", r.headers["Raft-Snapshot-Name"])
        bodies.add(check_stream(r.content))
    assert len(bodies) == 1  # same state, same bytes on every node
    # answered from local state: a lone node without a leader still dumps, never forwards
    for i in (2, 3):
        c.kill(i)
    r = c.get(1, "/snapshot/dump", timeout=10)
    assert r.status_code == 200 and check_stream(r.content) == bodies.pop()
    assert r.status_code == 200


def test_dump_releases_everything_when_the_client_aborts(make_cluster):
    c = make_cluster(nodes=3)
    big = base64.b64encode(os.urandom(1 << 20)).decode()
    for k in range(24):  # ~24 MiB of state
        assert c.post(1, "/kv/set", {"key": f"big{k:02d}", "value": big}).status_code == 200
    node = 2
    c.wait_applied(c.stat(c.wait_leader())["raft_status"]["commit"], nodes=[node])
    full = check_stream(c.get(node, "/snapshot/dump", timeout=60).content)
    assert len(full) > 24 << 20
    time.sleep(0.5)
    fds, rss = open_fds(c, node), rss_mb(c, node)
    for _ in range(10):
        # read a little of the body, then hang up
        r = requests.get(c.url(node, "/snapshot/dump"), stream=True, timeout=30)
        assert r.status_code == 200
        assert len(r.raw.read(64 * 1024)) == 64 * 1024
        r.raw._fp.fp.raw._sock.shutdown(socket.SHUT_RDWR)
        r.close()
    for _ in range(5):
        # hang up before the first byte of the body
        s = socket.create_connection(("127.0.0.1", c.base + node - 1), timeout=5)
        s.sendall(b"GET /snapshot/dump HTTP/1.1\r\nHost: x\r\n\r\n")
        s.close()
    time.sleep(1.5)
    assert open_fds(c, node) <= fds + 3  # fifteen leaked connections or files would show
    if not SAN:  # ASan keeps freed memory in quarantine; there LeakSanitizer checks at exit
        assert rss_mb(c, node) < rss + 120, "aborted dumps kept their memory"
    # a following dump works and is complete
    again = c.get(node, "/snapshot/dump", timeout=60)
    assert check_stream(again.content) == full
    assert int(again.headers["Raft-Snapshot-Index"]) >= 1


def build_state(c):
    s = requests.Session()
    for k in range(30):
        assert s.post(c.url(1 + k % 3, "/config/set"), data=json.dumps({"key": f"cfg{k}", "value": f"v{k}"}),
                      timeout=15).status_code == 200
    assert c.post(2, "/config/set", {"key": "balance", "value": "Enable"}).status_code == 200
    assert c.post(1, "/config/delete?key=cfg3").status_code == 200
    for k in range(120):
        value = base64.b64encode(bytes([k]) * k).decode()
        key = f"kv/{k:03d}" if k % 10 else f"kv/\u00e9/{k}"
        assert s.post(c.url(1 + k % 3, "/kv/set"), data=json.dumps({"key": key, "value": value}),
                      timeout=15).status_code == 200
    for k in range(5):
        body = {"cluster_id": 1, "name": f"svc{k % 2}", "host": f"http://10.0.0.{k}:80", "idc": "z0",
                "timeout": 3600 * (k + 1)}
        assert c.post(3, "/service/register", body).status_code == 200
    top = c.post(1, "/bid/alloc", {"count": 5000}).json()["end_bid"]
    disk = c.post(2, "/diskid/alloc", "null").json()["disk_id"]
    return top, disk


def all_kv(c, i):
    out, marker = [], ""
    while True:
        b = c.get(i, "/kv/list?count=37&marker=" + urllib.parse.quote(marker)).json()
        out += b["kvs"]
        if not b["marker"]:
            return out
        marker = b["marker"]


def state_of(c, i):
    return (c.get(i, "/config/list").json(), all_kv(c, i), c.get(i, "/service/list").json())


def restore_into(src_file, d, extra=()):
    peers = ",".join(f"{i}={d.raft_addr(i)}" for i in (1, 2, 3))
    for i in (1, 2, 3):
        rc, out, err = cmctl("snapshot", "restore", src_file, d.data_dir(i), "--node-id", str(i),
                             "--peers", peers, *extra, hosts="127.0.0.1:1")
        assert rc == 0, err


def test_save_restore_into_a_fresh_cluster(make_cluster):
    a = make_cluster(nodes=3)
    top, disk = build_state(a)
    snap = os.path.join(a.dir, "backup.snap")
    # save through cmctl; the first host is down, the second is a follower
    follower = next(i for i in (1, 2, 3) if i != a.wait_leader())
    rc, out, err = cmctl("snapshot", "save", snap, hosts=f"127.0.0.1:1,{a.http(follower)}")
    assert rc == 0, err
    assert "saved" in err and "applied index" in err
    check_stream(open(snap, "rb").read())
    rc, out, err = cmctl("snapshot", "inspect", snap, hosts="127.0.0.1:1")
    assert rc == 0 and "kv" in out and "service" in out and "121 entries" not in out
    want = state_of(a, 1)
    # 120 KV keys, and the 29 config keys plus balance: from cluster version 2 on the config
    # store is the KV store (CubeFS v3.3)
    assert len(want[1]) == 150 and len(want[2]["nodes"]) == 5

    b = make_cluster(nodes=3, start=False)
    restore_into(snap, b)
    b.start_all()
    lid = b.wait_leader()
    for i in (1, 2, 3):
        assert state_of(b, i) == want
    # the new cluster knows its own members' addresses, not the old cluster's
    for i in (1, 2, 3):
        assert b.stat(i)["leader_host"] == b.http(lid)
    # it carries on from the saved counters and takes writes
    assert b.post(2, "/bid/alloc", {"count": 1}).json()["start_bid"] == top + 1
    assert b.post(3, "/diskid/alloc", "null").json()["disk_id"] == disk + 1
    assert b.post(1, "/kv/set", {"key": "after", "value": "AQ=="}).status_code == 200
    # and survives a whole-cluster kill -9
    for i in (1, 2, 3):
        b.kill(i)
    b.start_all()
    # /config/list shows the KV store too (one store): the key written since is there
    assert state_of(b, 3)[0] == {"configs": dict(want[0]["configs"], after="\x01")}
    assert b.get(1, "/kv/get/after").json() == {"value": "AQ=="}
    # member addresses given explicitly
    c = make_cluster(nodes=3, start=False)
    restore_into(snap, c, ("--http", ",".join(f"{i}={c.http(i)}" for i in (1, 2, 3))))
    c.start_all()
    assert state_of(c, 2) == want


def test_restore_refuses_bad_input(make_cluster, tmp_path):
    a = make_cluster(nodes=1)
    snap = str(tmp_path / "s.snap")
    rc, _, err = cmctl("snapshot", "save", snap, hosts=a.http(1))
    assert rc == 0, err
    peers = "1=127.0.0.1:7001,2=127.0.0.1:7002"
    target = str(tmp_path / "d1")
    # the node must be one of the peers; ids and addresses must parse
    assert cmctl("snapshot", "restore", snap, target, "--node-id", "3", "--peers", peers, hosts="x")[0] == 2
    assert cmctl("snapshot", "restore", snap, target, "--node-id", "1", "--peers", "1=nohostport",
                 hosts="x")[0] == 2
    assert cmctl("snapshot", "restore", snap, target, "--node-id", "1", hosts="x")[0] == 2
    # a damaged file is refused before anything is written
    data = bytearray(open(snap, "rb").read())
    data[12] ^= 1
    bad = str(tmp_path / "bad.snap")
    open(bad, "wb").write(bytes(data))
    rc, _, err = cmctl("snapshot", "restore", bad, target, "--node-id", "1", "--peers", peers, hosts="x")
    assert rc == 5 and "checksum" in err and not os.path.exists(target)
    assert cmctl("snapshot", "inspect", bad, hosts="x")[0] == 5
    # a directory in use is never overwritten
    rc, _, err = cmctl("snapshot", "restore", snap, a.data_dir(1), "--node-id", "1", "--peers", peers,
                       hosts="x")
    assert rc == 5 and "not empty" in err
    assert cmctl("snapshot", "restore", snap, target, "--node-id", "1", "--peers", peers, hosts="x")[0] == 0
    assert os.path.exists(os.path.join(target, "node.json"))
    assert json.load(open(os.path.join(target, "node.json"))) == {"node_id": 1, "cluster_id": 1, "member": True}


def test_restore_keeps_disks_and_volumes(make_cluster):
    a = make_cluster(nodes=3)
    disk_id = a.post(1, "/diskid/alloc", "null").json()["disk_id"]
    info = {"cluster_id": 1, "idc": "z0", "rack": "r1", "host": "http://127.0.0.1:8899",
            "path": "/data/d1", "status": 1, "readonly": False,
            "create_time": "2022-03-24T17:33:45.123456789+08:00",
            "last_update_time": "2022-03-24T17:33:45.123456789+08:00", "disk_id": disk_id,
            "used": 0, "free": 107374182400, "size": 107374182400, "max_chunk_cnt": 0,
            "free_chunk_cnt": 0, "used_chunk_cnt": 0}
    assert a.post(2, "/disk/add", info).status_code == 200
    snap = os.path.join(a.dir, "backup.snap")
    assert cmctl("snapshot", "save", snap, hosts=a.http(1))[0] == 0
    want = (a.get(1, "/disk/list?count=200").json(), a.get(1, "/volume/list?count=500").text)
    b = make_cluster(nodes=3, start=False)
    restore_into(snap, b)
    b.start_all()
    b.wait_leader()
    assert (b.get(2, "/disk/list?count=200").json(), b.get(2, "/volume/list?count=500").text) == want
