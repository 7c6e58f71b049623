"""Volume routes as the current CubeFS release (v3.5.x) uses them, on top of the 2022 contract
(shared/spec/current-release.md §2.1, §3.3, §6.2, §6.3): /volume/unlock answers 200 for idle and
unlocking volumes and takes `force`; /volume/update answers 918 only for an old vuid that is not
current, and an idempotent retry before 919; /volume/unit/alloc wants the current vuid; the
/volume/list cap of 2000; volume_mgr_config.allocatable_size; the /chunk/report wire rules and
argument-less POSTs with an empty body; lock/unlock tasks that skip units on broken disks; and
/volume/unit/list never reporting a vuid newer than the truth."""
import json
import os
import shutil
import signal
import struct
import subprocess
import time

import pytest
import requests

from cmcluster import BUILD, ROOT, Cluster
from test_volumes import alloc, err, get, idle_vid, sim_chunks
from volutil import (CS, FakeBlobnode, Sim, chunk_report, metric, settled, vstat, vuid, wait,
                     wait_pool)

POOL = 4
VOLCFG = {"min_allocable_volume_count": POOL, "check_expired_volume_interval_s": 1,
          "blob_node_config": {"client_timeout_ms": 3000}}
DISKCFG = {"heartbeat_expire_interval_s": 3}
MIB = 1 << 20
REPORT_MAX = 65536  # records the v3.5 decoder accepts


def extra(volcfg=None):
    return {"volume_mgr_config": dict(VOLCFG, **(volcfg or {})), "disk_mgr_config": DISKCFG}


@pytest.fixture(scope="module")
def fleet():
    """A 3-node cluster with 3 simulated blobnodes x 4 disks, its pool filled."""
    c = Cluster(nodes=3, extra=extra())
    c.start_all()
    sim = Sim(c, hosts=3, disks=4).start()
    try:
        sim.wait(lambda: sim.stats()["registered"] == 12, what="registration")
        wait_pool(c, POOL)
        yield c, sim
        assert sim.stop() == 0
    finally:
        if sim.proc.poll() is None:
            sim.proc.kill()
        c.shutdown()
    reports = c.sanitizer_reports()
    if not reports:
        shutil.rmtree(c.dir, ignore_errors=True)
    assert not reports, "sanitizer reports:\n" + "\n".join(reports[:20])


@pytest.fixture
def sim_cluster(make_cluster):
    """Factory for tests that break their cluster: (cluster, sim), the sim stopped after."""
    sims = []

    def make(volcfg=None, hosts=3, disks=4):
        c = make_cluster(nodes=3, extra=extra(volcfg))
        sim = Sim(c, hosts=hosts, disks=disks).start()
        sims.append(sim)
        sim.wait(lambda: sim.stats()["registered"] == hosts * disks, what="registration")
        return c, sim

    yield make
    for sim in sims:
        if sim.proc.poll() is None:
            sim.proc.send_signal(signal.SIGCONT)
            assert sim.stop() == 0


def tasks_running(c):
    """Lock/unlock tasks the leader still holds."""
    return metric(c, c.wait_leader(), "clustermgr_volume_jobs", job="tasks")


def all_status(c, vid, want, nodes=(1, 2, 3)):
    return all(get(c, i, vid)["status"] == want for i in nodes)


# ---- /volume/unlock (§3.3) ------------------------------------------------------------------------

def test_unlock_answers_of_the_current_release(fleet):
    """Idle and unlocking are 200 without a change, only active is 903; `force` is accepted."""
    c, sim = fleet
    wait_pool(c, POOL)
    vid = idle_vid(c)
    rw = sim.stats()["calls"]["readwrite"]
    for body in ({"vid": vid}, {"vid": vid, "force": False}, {"vid": vid, "force": True}):
        r = c.post(2, "/volume/unlock", body)
        assert (r.status_code, r.text) == (200, ""), body
    settled(c)
    assert all_status(c, vid, 1)
    assert sim.stats()["calls"]["readwrite"] == rw  # nothing to do, nothing was done
    active = alloc(c, count=1).json()["alloc_volume_infos"][0]["vid"]
    for body in ({"vid": active}, {"vid": active, "force": True}):
        assert err(c.post(3, "/volume/unlock", body)) == (903, {"error": "unlock volume not allow"})
    assert err(c.post(1, "/volume/unlock", {"vid": 99999, "force": True}))[0] == 904
    for body in ('{"vid":%d,"force":"yes"}' % vid, '{"vid":%d,"force":1}' % vid):
        r = c.post(1, "/volume/unlock", body)
        assert (r.status_code, r.json()["code"]) == (400, "Argument"), body
    # lock ignores a `force` (not one of its fields), as the reference's decoder does
    assert c.post(1, "/volume/lock", '{"vid":%d,"force":"x"}' % vid).status_code == 200
    sim.wait(lambda: tasks_running(c) == 0, what="lock task done")
    # locked -> unlocking -> idle; asked again while unlocking or idle: 200, no second task
    assert c.post(1, "/volume/unlock", {"vid": vid}).status_code == 200
    assert c.post(2, "/volume/unlock", {"vid": vid}).status_code == 200
    wait(lambda: all_status(c, vid, 1), what="idle after unlock")
    assert c.post(3, "/volume/unlock", {"vid": vid}).status_code == 200
    sim.wait(lambda: tasks_running(c) == 0, what="no task left")
    assert sim.stats()["calls"]["readwrite"] == rw + 6


def test_force_unlock_ignores_blobnodes_that_fail(sim_cluster):
    """A plain unlock waits for every chunk to be writable again; a forced one replaces it and
    lets the volume go idle although the blobnodes do not answer."""
    c, sim = sim_cluster()
    wait_pool(c, POOL)
    vid = idle_vid(c)
    assert c.post(1, "/volume/lock", {"vid": vid}).status_code == 200
    sim.wait(lambda: sim.stats()["calls"]["readonly"] >= 6, what="readonly")
    wait(lambda: tasks_running(c) == 0, what="lock task done")
    sim.proc.send_signal(signal.SIGSTOP)  # no blobnode answers from now on
    try:
        assert c.post(2, "/volume/unlock", {"vid": vid}).status_code == 200
        time.sleep(4)  # the client timeout is 3 s: the readwrite calls failed at least once
        assert all_status(c, vid, 4)
        assert tasks_running(c) == 1
        # without force an unlocking volume is left alone
        assert c.post(3, "/volume/unlock", {"vid": vid, "force": False}).status_code == 200
        time.sleep(1)
        assert all_status(c, vid, 4)
        # forced: a new task replaces the waiting one and its failures do not count
        assert c.post(3, "/volume/unlock", {"vid": vid, "force": True}).status_code == 200
        wait(lambda: all_status(c, vid, 1), timeout=15, what="idle after a forced unlock")
        assert tasks_running(c) == 0
        # idle now: force is a no-op like a plain unlock
        assert c.post(1, "/volume/unlock", {"vid": vid, "force": True}).status_code == 200
    finally:
        sim.proc.send_signal(signal.SIGCONT)
    settled(c)
    assert all_status(c, vid, 1)
    assert all(vstat(c, i)["unlocking_volume"] == 0 for i in (1, 2, 3))


def test_force_unlock_of_a_locked_volume(fleet):
    """Straight from lock, force works like a plain unlock when the blobnodes answer."""
    c, sim = fleet
    wait_pool(c, POOL)
    vid = idle_vid(c)
    assert c.post(1, "/volume/lock", {"vid": vid}).status_code == 200
    sim.wait(lambda: tasks_running(c) == 0, what="lock task done")
    rw = sim.stats()["calls"]["readwrite"]
    assert c.post(2, "/volume/unlock", {"vid": vid, "force": True}).status_code == 200
    wait(lambda: all_status(c, vid, 1), what="idle")
    assert sim.stats()["calls"]["readwrite"] == rw + 6
    units = get(c, 1, vid)["units"]
    status = {(ch["diskid"], ch["vuid"]): ch["status"] for ch in sim_chunks(sim)}
    assert all(status[(u["disk_id"], u["vuid"])] == 1 for u in units)


# ---- lock/unlock tasks skip units on broken disks (v3.5.1) -------------------------------------------

def test_tasks_skip_units_on_broken_disks(fleet):
    """A unit on a broken disk whose blobnode fails every call: the lock and unlock tasks go
    around it instead of retrying forever."""
    c, sim = fleet
    wait_pool(c, POOL)
    fake = FakeBlobnode()
    try:
        fake.answers["readonly"] = (500, {"error": "disk is broken"})
        fake.answers["readwrite"] = (500, {"error": "disk is broken"})
        did = c.post(1, "/diskid/alloc", "").json()["disk_id"]
        d = {"cluster_id": 1, "idc": "z0", "rack": "rx", "host": fake.url, "path": "/broken",
             "status": 1, "readonly": False, "disk_id": did, "used": 0, "free": 1 << 40,
             "size": 1 << 40, "max_chunk_cnt": 0, "free_chunk_cnt": 0, "used_chunk_cnt": 0}
        assert c.post(1, "/disk/add", d).status_code == 200
        # out of placement at once
        assert c.post(1, "/disk/access", {"disk_id": did, "readonly": True}).status_code == 200
        vid = idle_vid(c)
        u = get(c, 1, vid)["units"][0]
        # the unit now lives on the fake disk (as after a migration), which then breaks
        body = dict(epoch=1, next_epoch=1, vuid=u["vuid"], disk_id=did, total=0, free=0, used=0,
                    compact=False, host="")
        assert c.post(2, "/admin/update/volume/unit", body).status_code == 200
        assert c.post(3, "/disk/set", {"disk_id": did, "status": 2}).status_code == 200
        calls = sim.stats()["calls"]
        assert c.post(1, "/volume/lock", {"vid": vid}).status_code == 200
        sim.wait(lambda: sim.stats()["calls"]["readonly"] == calls["readonly"] + 5, what="readonly")
        wait(lambda: tasks_running(c) == 0, timeout=10, what="the lock task to end")
        assert c.post(1, "/volume/unlock", {"vid": vid}).status_code == 200
        wait(lambda: all_status(c, vid, 1), timeout=10, what="idle after unlock")
        assert sim.stats()["calls"]["readwrite"] == calls["readwrite"] + 5
        assert not [p for _, p in fake.calls if "/chunk/read" in p], fake.calls
        # put the unit back on its disk
        assert c.post(2, "/admin/update/volume/unit", dict(body, disk_id=u["disk_id"])).status_code \
            == 200
        assert get(c, 1, vid)["units"][0] == u
    finally:
        fake.close()


# ---- the unit migration calls (§3.3, §6.3) ------------------------------------------------------------

def test_update_918_only_for_a_stale_old_vuid(fleet):
    """The v3.5.3 scheduler panics on 918: a retry of an applied switch is 200 even after a later
    reservation (the 2022 contract said 919 there); 918 only when old_vuid is not current."""
    c, sim = fleet
    wait_pool(c, POOL)
    vid = idle_vid(c)
    assert c.post(1, "/volume/lock", {"vid": vid}).status_code == 200
    old = get(c, 1, vid)["units"][1]
    new = c.post(2, "/volume/unit/alloc", {"vuid": old["vuid"]}).json()
    assert new["vuid"] == old["vuid"] + 1
    upd = {"old_vuid": old["vuid"], "new_vuid": new["vuid"], "new_disk_id": new["disk_id"]}
    assert c.post(1, "/volume/update", upd).status_code == 200
    # the next move of the same unit reserves epoch 3 (from the current vuid only) ...
    stale = c.post(3, "/volume/unit/alloc", {"vuid": old["vuid"]})
    assert err(stale) == (918, {"error": "update volume unit, old vuid not match"})
    nxt = c.post(3, "/volume/unit/alloc", {"vuid": new["vuid"]}).json()
    assert nxt["vuid"] == old["vuid"] + 2
    # ... and the first switch is retried: done already, not 919
    for node in (1, 2, 3):
        r = c.post(node, "/volume/update", upd)
        assert (r.status_code, r.text) == (200, ""), r.text
    # the unit moved on: old_vuid is not current any more -> 918
    assert err(c.post(1, "/volume/update", dict(upd, new_vuid=nxt["vuid"],
                                                new_disk_id=nxt["disk_id"]))) == \
        (918, {"error": "update volume unit, old vuid not match"})
    # from the current vuid: a new vuid that is not the reserved one is 919, never 918
    cur = {"old_vuid": new["vuid"], "new_disk_id": nxt["disk_id"]}
    for bad in (new["vuid"] + 5, vuid(vid, 2, 3), vuid(vid, 1, 2) + 7):
        assert err(c.post(2, "/volume/update", dict(cur, new_vuid=bad)))[0] == 919, bad
    assert c.post(2, "/volume/update", dict(cur, new_vuid=nxt["vuid"])).status_code == 200
    settled(c)
    for i in (1, 2, 3):
        u = get(c, i, vid)["units"][1]
        assert (u["vuid"], u["disk_id"]) == (nxt["vuid"], nxt["disk_id"])
    for v, d in ((old["vuid"], old["disk_id"]), (new["vuid"], new["disk_id"])):
        assert c.post(1, "/volume/unit/release", {"vuid": v, "disk_id": d}).status_code == 200
    assert c.post(1, "/volume/unlock", {"vid": vid}).status_code == 200
    wait(lambda: get(c, 1, vid)["status"] == 1, what="unlock")


def test_unit_alloc_wants_the_current_vuid(fleet):
    """v3.5.1: any other epoch of the unit is 918 (the 2022 contract used only vid and index)."""
    c, sim = fleet
    wait_pool(c, POOL)
    vid = idle_vid(c)
    u = get(c, 1, vid)["units"][4]
    creates = sim.stats()["calls"]["create"]
    for bad in (u["vuid"] + 1, u["vuid"] + 100, u["vuid"] - 1):
        assert err(c.post(2, "/volume/unit/alloc", {"vuid": bad})) == \
            (918, {"error": "update volume unit, old vuid not match"}), bad
    assert err(c.post(1, "/volume/unit/alloc", {"vuid": vuid(vid, 6, 1)}))[0] == 924
    assert err(c.post(1, "/volume/unit/alloc", {"vuid": vuid(99999, 0, 1)}))[0] == 904
    # nothing was reserved or created on the way
    settled(c)
    assert sim.stats()["calls"]["create"] == creates
    r = c.post(3, "/volume/unit/alloc", {"vuid": u["vuid"]})
    assert r.status_code == 200 and r.json()["vuid"] == u["vuid"] + 1, r.text
    c.post(1, "/volume/unit/release", r.json())


# ---- /volume/unit/list never reports a vuid newer than the truth (v3.5.3 blobnode chunk GC) ----------

def test_unit_list_reports_the_current_epoch(fleet):
    """A v3.5.3 blobnode deletes its chunks whose epoch is below what this route reports: reserved
    epochs and chunks created for a move that has not been switched must not show."""
    c, sim = fleet
    wait_pool(c, POOL)
    vid = idle_vid(c)
    u = get(c, 1, vid)["units"][3]
    a = c.post(1, "/volume/unit/alloc", {"vuid": u["vuid"]}).json()
    b = c.post(2, "/volume/unit/alloc", {"vuid": u["vuid"]}).json()
    assert (a["vuid"], b["vuid"]) == (u["vuid"] + 1, u["vuid"] + 2)
    settled(c)
    prefix = u["vuid"] & ~0xffffff

    def listed(node, disk, stale=False):
        r = c.get(node, f"/volume/unit/list?disk_id={disk}" + ("&stale=true" if stale else ""))
        return [x["vuid"] for x in r.json()["volume_unit_infos"] if x["vuid"] & ~0xffffff == prefix]

    assert u["disk_id"] not in (a["disk_id"], b["disk_id"])  # a move leaves the volume's disks
    for i in (1, 2, 3):
        for stale in (False, True):
            assert listed(i, u["disk_id"], stale) == [u["vuid"]]  # not +1, not +2
            assert listed(i, a["disk_id"], stale) == []
            assert listed(i, b["disk_id"], stale) == []
        assert get(c, i, vid)["units"][3]["vuid"] == u["vuid"]
    # the chunks of the reservations exist on their blobnodes meanwhile
    assert any(ch["vuid"] == a["vuid"] for ch in sim_chunks(sim, a["disk_id"]))
    # switched to the latest reservation: listed there, with that epoch, nowhere else
    upd = {"old_vuid": u["vuid"], "new_vuid": b["vuid"], "new_disk_id": b["disk_id"]}
    assert c.post(3, "/volume/update", upd).status_code == 200
    for i in (1, 2, 3):
        assert listed(i, b["disk_id"]) == [b["vuid"]]
        assert listed(i, u["disk_id"]) == []
        if a["disk_id"] != b["disk_id"]:
            assert listed(i, a["disk_id"]) == []
    for v, d in ((u["vuid"], u["disk_id"]), (a["vuid"], a["disk_id"])):
        assert c.post(1, "/volume/unit/release", {"vuid": v, "disk_id": d}).status_code == 200


# ---- /volume/list cap (v3.3: 2000) ------------------------------------------------------------------

def volgen_binary():
    """bench/volgen of this build tree; `make cluster` does not build it, so build it here (with
    the sanitizers when the tree is the sanitizer one)."""
    path = os.path.join(ROOT, BUILD, "volgen")
    if not os.path.exists(path):
        san = ["SAN=1"] if BUILD.endswith("-san") else []
        r = subprocess.run(["make", f"BUILD={BUILD}", *san, f"{BUILD}/volgen"], cwd=ROOT,
                           capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    return path


def test_volume_list_count_cap_is_2000(make_cluster, tmp_path):
    """2,100 volumes, built in process and restored into a cluster: pages of at most 2000."""
    build = os.path.join(ROOT, BUILD)
    snap = str(tmp_path / "vols.snap")
    r = subprocess.run([volgen_binary(), "--out", snap, "--volumes", "2100",
                        "--mode", "EC3P3", "--idc", "z0", "--hosts", "3", "--disks", "4",
                        "--active", "0", "--reported", "0"], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    c = make_cluster(start=False, nodes=3,
                     extra={"volume_mgr_config": {"min_allocable_volume_count": 0}})
    peers = ",".join(f"{i}={c.raft_addr(i)}" for i in (1, 2, 3))
    for i in (1, 2, 3):
        r = subprocess.run([os.path.join(build, "cmctl"), "snapshot", "restore", snap,
                            c.data_dir(i), "--node-id", str(i), "--peers", peers],
                           capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
    c.start_all()
    lid = c.wait_leader()
    assert vstat(c, lid)["total_volume"] == 2100
    for node in (1, 2, 3):
        page = c.get(node, "/volume/list?count=100000").json()
        vids = [v["vid"] for v in page["volumes"]]
        assert len(vids) == 2000 and page["marker"] == vids[-1] and vids == sorted(vids)
        rest = c.get(node, f"/volume/list?count=2000&marker={page['marker']}").json()
        assert len(rest["volumes"]) == 100 and rest["volumes"][0]["vid"] > vids[-1]
        assert len(c.get(node, "/volume/list?count=1999").json()["volumes"]) == 1999


# ---- allocatable_size (v3.3) -----------------------------------------------------------------------

def test_allocatable_size_decides_what_is_handed_out(sim_cluster):
    """With volume_mgr_config.allocatable_size a volume is handed out only with more free space
    than that; volume_reserve_size (10 MiB here) still decides retain."""
    c, sim = sim_cluster(volcfg={"allocatable_size": 40 * MIB})  # a new volume has 48 MiB
    wait_pool(c, POOL)
    vid = idle_vid(c)
    units = get(c, 1, vid)["units"]

    def report(unit, free):
        rec = dict(vuid=unit["vuid"], disk_id=unit["disk_id"], total=CS, used=CS - free, free=free)
        hdr = {"Content-Type": "application/octet-stream"}
        assert c.post(2, "/chunk/report", chunk_report([rec]), headers=hdr).status_code == 200

    settled(c)
    before = vstat(c, 1)
    assert before["can_alloc_volume"] == POOL, before
    report(units[2], 10 * MIB)  # the volume: 30 MiB free, above the freeze threshold
    settled(c)
    assert all(get(c, i, vid)["free"] == 30 * MIB for i in (1, 2, 3))
    # it left the pool, which gets a new volume to keep POOL above allocatable_size
    wait(lambda: vstat(c, 1)["total_volume"] == before["total_volume"] + 1, what="a new volume")
    wait_pool(c, POOL)
    settled(c)
    for i in (1, 2, 3):
        st = vstat(c, i)
        assert (st["idle_volume"], st["can_alloc_volume"]) == (POOL + 1, POOL), st
    got = alloc(c, count=1000, ip="10.5.0.1").json()["alloc_volume_infos"]
    assert got and vid not in [v["vid"] for v in got]
    assert all(v["free"] > 40 * MIB for v in got)
    assert get(c, 1, vid)["status"] == 1
    # a lease that falls below allocatable_size (not below the freeze threshold) is retained
    lease = got[0]
    report(lease["units"][0], 10 * MIB)
    settled(c)
    r = c.post(3, "/volume/retain", {"tokens": [lease["token"]]}, headers={"X-Real-Ip": "10.5.0.1"})
    assert [t["token"] for t in r.json()["retain_vol_tokens"]] == [lease["token"]]
    # back above: allocatable again
    report(units[2], CS)
    settled(c)
    wait(lambda: vid in [v["vid"] for v in alloc(c, count=1000, ip="10.5.0.2").json().get(
        "alloc_volume_infos") or []], what="allocatable again")


# ---- /chunk/report and empty bodies on the wire (§2.1) ---------------------------------------------

def test_chunk_report_wire(fleet):
    c, _ = fleet
    wait_pool(c, POOL)
    vid = idle_vid(c)
    units = get(c, 1, vid)["units"]
    # the current client's Content-Type, the 2022 one, and none, on the leader and a follower
    for k, ctype in enumerate(("application/octet-stream", "application/x-www-form-urlencoded",
                               None)):
        used = 1000 * (k + 1)
        rec = dict(vuid=units[0]["vuid"], disk_id=units[0]["disk_id"], total=CS, used=used,
                   free=CS - used)
        for node in (1, 2, 3):
            h = {"Content-Type": ctype} if ctype else {}
            r = requests.post(c.url(node, "/chunk/report"), data=chunk_report([rec]), headers=h,
                              timeout=15)
            assert (r.status_code, r.text) == (200, ""), (ctype, r.text)
        settled(c)
        lst = c.get(2, f"/volume/unit/list?disk_id={units[0]['disk_id']}").json()
        assert next(x for x in lst["volume_unit_infos"] if x["vuid"] == units[0]["vuid"])["used"] \
            == used
    hdr = {"Content-Type": "application/octet-stream"}
    # 65,536 records decode (unknown volumes are skipped); one more is 900, as the reference
    one = chunk_report([dict(vuid=vuid(10_000_000, 0, 1), disk_id=1, total=CS, used=0, free=CS)])
    body = struct.pack(">I", REPORT_MAX + 1) + one[4:] * (REPORT_MAX + 1)
    assert len(body) == 4 + 79 * (REPORT_MAX + 1) < 8 * MIB
    cut = body[:len(body) - 79]
    cut = REPORT_MAX.to_bytes(4, "big") + cut[4:]
    for node in (1, 3):
        assert c.post(node, "/chunk/report", cut, headers=hdr).status_code == 200
        assert err(c.post(node, "/chunk/report", body, headers=hdr)) == \
            (900, {"error": "cm: unexpected error"})
    # above 8 MiB: 400 Illegal Arguments without reading it, on every node
    for node in (1, 2):
        r = c.post(node, "/chunk/report", b"\0" * (8 * MIB + 1), headers=hdr)
        assert err(r) == (400, {"error": "Illegal Arguments"})
    # exactly 8 MiB is read (and does not decode)
    assert err(c.post(1, "/chunk/report", b"\0" * (8 * MIB), headers=hdr))[0] == 900


def raw_post(c, node, path, headers):
    return c.raw_post(node, path, headers)


def test_argless_posts_with_an_empty_body(fleet):
    """Since v3.3 the Go client sends argument-less POSTs with Content-Length: 0 instead of
    `null`; every such route serves them on the leader and through a follower."""
    c, _ = fleet
    lid = c.wait_leader()
    follower = next(i for i in (1, 2, 3) if i != lid)
    seen = []
    for node in (lid, follower):
        for hdrs in ({"Content-Length": "0"},
                     {"Content-Length": "0", "Content-Type": "application/json"},
                     {"Content-Length": "0", "Content-Type": "application/octet-stream"}):
            status, body = raw_post(c, node, "/diskid/alloc", hdrs)
            assert status == 200, (node, hdrs, body)
            seen.append(json.loads(body)["disk_id"])
            assert c.post(node, "/config/set", {"key": "zl_key", "value": "v"}).status_code == 200
            status, body = raw_post(c, node, "/config/delete?key=zl_key", hdrs)
            assert (status, body) == (200, b""), (node, hdrs, body)
            assert c.get(node, "/config/get?key=zl_key").status_code == 404
            assert c.post(node, "/kv/set/zl_kv", {"key": "zl_kv", "value": "eA=="}).status_code \
                == 200
            status, body = raw_post(c, node, "/kv/delete/zl_kv", hdrs)
            assert (status, body) == (200, b""), (node, hdrs, body)
            assert c.get(node, "/kv/get/zl_kv").status_code == 404
        # the 2022 client's `null` still works
        assert c.post(node, "/diskid/alloc", "null").status_code == 200
    assert len(set(seen)) == len(seen) and seen == sorted(seen)
    # a route that takes arguments still wants them
    status, body = raw_post(c, lid, "/volume/unlock", {"Content-Length": "0"})
    assert status == 400 and json.loads(body)["code"] == "Argument"
