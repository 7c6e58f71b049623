"""cmctl migrate: read a running cluster over its HTTP API into our snapshot stream, restore it
into a new cluster, verify both agree, then switch the blobnode fleet and a lease holder over
and check they keep working with ids that never collide with the source's. And the refusals:
a server that is not a clustermgr, a node without a leader, a source that keeps changing; none
of them writes a file."""
import base64
import os
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import requests

from cmcluster import ROOT, BUILD, pick_ports
from volutil import EC3P3, Sim, volumes, wait, wait_pool

CMCTL = os.path.join(ROOT, BUILD, "cmctl")
POOL = 6
EXTRA = {"volume_mgr_config": {"min_allocable_volume_count": POOL,
                               "check_expired_volume_interval_s": 1},
         "disk_mgr_config": {"heartbeat_expire_interval_s": 3}}


def cmctl(*args, timeout=120):
    p = subprocess.run([CMCTL, "--host", "127.0.0.1:1", *args], capture_output=True,
                       timeout=timeout)
    return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")


def alloc(c, ip, count):
    r = c.post(1, "/volume/alloc", {"code_mode": EC3P3, "count": count},
               headers={"X-Real-Ip": ip})
    assert r.status_code == 200, r.text
    return r.json()["alloc_volume_infos"]


def vols(c):
    return volumes(c, 1)


def build_source(src, sim):
    """Volumes in every status, leases of two hosts, services, config, KV and used scopes."""
    sim.wait(lambda: sim.stats()["registered"] == 12, what="registration")
    wait_pool(src, POOL, nodes=(1,))
    leases = {"10.0.0.7": alloc(src, "10.0.0.7", 2), "10.0.0.8": alloc(src, "10.0.0.8", 1)}
    idle = [v["vid"] for v in vols(src) if v["status"] == 1]
    locked, moved = idle[0], idle[1]
    # a unit migrated (lock, new chunk, switch, unlock) and one reservation left in flight
    assert src.post(1, "/volume/lock", {"vid": moved}).status_code == 200
    old = src.get(1, f"/volume/get?vid={moved}").json()["units"][1]
    new = src.post(1, "/volume/unit/alloc", {"vuid": old["vuid"]}).json()
    upd = {"old_vuid": old["vuid"], "new_vuid": new["vuid"], "new_disk_id": new["disk_id"]}
    assert src.post(1, "/volume/update", upd).status_code == 200
    assert src.post(1, "/volume/unlock", {"vid": moved}).status_code == 200
    assert src.post(1, "/volume/lock", {"vid": locked}).status_code == 200
    unit0 = src.get(1, f"/volume/get?vid={locked}").json()["units"][0]["vuid"]
    inflight = src.post(1, "/volume/unit/alloc", {"vuid": unit0}).json()["vuid"]
    assert src.post(1, "/service/register",
                    {"cluster_id": 1, "name": "PROXY", "host": "http://10.0.0.7:9600",
                     "idc": "z0", "timeout": 600}).status_code == 200
    assert src.post(1, "/config/set", {"key": "disk_repair", "value": "Disable"}).status_code == 200
    for k in ("a", "b/c", "z"):
        assert src.post(1, "/kv/set", {"key": k, "value": base64.b64encode(k.encode()).decode()}) \
            .status_code == 200
    bid_top = src.post(1, "/bid/alloc", {"count": 1000}).json()["end_bid"]
    wait_pool(src, POOL, nodes=(1,))
    wait(lambda: src.get(1, f"/volume/get?vid={moved}").json()["status"] == 1, what="unlocked")
    return leases, locked, moved, inflight, bid_top


def test_migrate_into_a_new_cluster_and_switch_over(make_cluster, tmp_path):
    src = make_cluster(nodes=1, extra=EXTRA)
    sim = Sim(src, hosts=3, disks=4).start()
    try:
        leases, locked, moved, inflight, bid_top = build_source(src, sim)
        out = str(tmp_path / "migrated.snap")
        rc, _, err = cmctl("migrate", "--from", f"127.0.0.1:1,{src.http(1)}", "--out", out,
                           "--lease-hosts", "10.0.0.8", "--id-margin", "100")
        assert rc == 0, err
        assert "leases: 3" in err and "disks 12" in err and "nodes 3" in err, err
        assert "node sets of 3 of 3 nodes, disk sets of 12 of 12 disks" in err, err
        source_vols = vols(src)
        max_vid = max(v["vid"] for v in source_vols)
        # a new cluster restored from it; no pool refill yet, so both hold the same volumes
        dst = make_cluster(nodes=1, start=False,
                           extra=dict(EXTRA, volume_mgr_config={"min_allocable_volume_count": 0}))
        rc, _, err = cmctl("snapshot", "restore", out, dst.data_dir(1), "--node-id", "1",
                           "--peers", f"1={dst.raft_addr(1)}")
        assert rc == 0, err
        dst.start_all()
        rc, report, err = cmctl("migrate", "--verify", "--from", src.http(1), "--to", dst.http(1),
                                "--lease-hosts", "10.0.0.8")
        assert rc == 0, report + err
        assert report.startswith("0 differences"), report
        assert {v["vid"]: v["status"] for v in vols(dst)}[locked] == 3
        # verify sees a difference
        assert src.post(1, "/kv/set", {"key": "late", "value": "AQ=="}).status_code == 200
        rc, report, _ = cmctl("migrate", "--verify", "--from", src.http(1), "--to", dst.http(1))
        assert rc == 1 and "kv late: only on the source" in report, report

        # switch the fleet: the same hosts and disks, heartbeating the new cluster
        assert sim.stop() == 0
        sim = Sim(dst, hosts=3, disks=4, base=sim.base).start()
        sim.wait(lambda: sim.stats()["registered"] == 12, what="registration on the new cluster")
        sim.wait(lambda: sim.stats()["heartbeats"]["ok"] >= 24, what="heartbeats accepted")
        disks = dst.get(1, "/disk/list?count=200").json()["disks"]
        assert len(disks) == 12 and all(d["status"] == 1 for d in disks)
        # the lease holders renew with their old tokens
        for ip, held in leases.items():
            toks = [v["token"] for v in held]
            r = dst.post(1, "/volume/retain", {"tokens": toks}, headers={"X-Real-Ip": ip})
            assert sorted(t["token"] for t in r.json()["retain_vol_tokens"]) == sorted(toks)
        # ids never collide with the source's
        assert dst.post(1, "/bid/alloc", {"count": 1}).json()["start_bid"] > bid_top + 100
        assert dst.post(1, "/diskid/alloc", "null").json()["disk_id"] > 12 + 100
        unit0 = inflight & ~0xffffff | 1
        assert dst.post(1, "/volume/unit/alloc", {"vuid": unit0}).json()["vuid"] > inflight
        # the pool refills on the new cluster with vids above the source's
        dst.stop(1)
        dst.configs[1]["volume_mgr_config"]["min_allocable_volume_count"] = POOL + 4
        dst.write_config(1)
        dst.start_all()
        wait(lambda: max(v["vid"] for v in vols(dst)) > max_vid + 100, timeout=30,
             what="new volumes")
        assert {v["vid"] for v in vols(dst)} >= {v["vid"] for v in source_vols}
        got = dst.get(1, f"/volume/get?vid={moved}").json()
        want = next(v for v in source_vols if v["vid"] == moved)
        assert [u["vuid"] for u in got["units"]] == [u["vuid"] for u in want["units"]]
    finally:
        if sim.proc.poll() is None:
            sim.proc.kill()


class NotCM(BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"<html>hello</html>"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


def test_migrate_refuses_bad_sources(make_cluster, tmp_path):
    out = str(tmp_path / "x.snap")
    # an HTTP server that is not a clustermgr
    port = pick_ports(1)
    srv = ThreadingHTTPServer(("127.0.0.1", port), NotCM)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        rc, _, err = cmctl("migrate", "--from", f"127.0.0.1:{port}", "--out", out)
        assert rc == 1 and "is not a clustermgr" in err, err
    finally:
        srv.shutdown()
    assert not os.path.exists(out)
    # a source whose KV keeps changing while it is read (several pages to read, writers
    # faster than the reader)
    c = make_cluster(nodes=1)
    stop = threading.Event()
    written = [0]

    def churn(n):
        s = requests.Session()
        k = 0
        while not stop.is_set():
            s.post(c.url(1, "/kv/set"), json={"key": f"churn{n}-{k}", "value": "AQ=="}, timeout=15)
            k += 1
            written[0] += 1

    threads = [threading.Thread(target=churn, args=(n,)) for n in range(3)]
    for t in threads:
        t.start()
    try:
        wait(lambda: written[0] >= 2500, timeout=30, what="keys written")
        rc, _, err = cmctl("migrate", "--from", c.http(1), "--out", out)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert rc == 3 and "kept changing" in err and "reading again" in err, err
    assert not os.path.exists(out) and not os.path.exists(out + ".tmp")
    # a node whose peers are gone has no leader
    c3 = make_cluster(nodes=3)
    lid = c3.wait_leader()
    others = [i for i in (1, 2, 3) if i != lid]
    c3.kill(lid)
    c3.kill(others[0])
    wait(lambda: c3.stat(others[1])["leader_host"] == "", timeout=20, what="no leader")
    rc, _, err = cmctl("migrate", "--from", c3.http(others[1]), "--out", out)
    assert rc == 3 and "has no leader" in err, err
    assert not os.path.exists(out)


def test_migrate_signs_its_requests_when_the_source_has_auth(make_cluster, tmp_path):
    c = make_cluster(nodes=1, extra={"auth": {"enable_auth": True, "secret": "mig-secret"}})
    out = str(tmp_path / "a.snap")
    rc, _, err = cmctl("migrate", "--from", c.http(1), "--out", out)
    assert rc != 0 and not os.path.exists(out), err
    rc, _, err = cmctl("--secret", "mig-secret", "migrate", "--from", c.http(1), "--out", out)
    assert rc == 0 and os.path.exists(out), err
    rc, _, err = cmctl("--secret", "mig-secret", "migrate", "--from", c.http(1), "--out", out,
                       "--id-margin", "99999999")
    assert rc == 2 and "--id-margin" in err, err
