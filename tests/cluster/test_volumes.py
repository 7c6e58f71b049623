"""Volumes against a simulated blobnode fleet: the idle pool and its refill, allocation leases,
retain and expiry, lock/unlock with the blobnode calls, the four-call unit migration, chunk
reports, the compact flag and health, disks that break, expire and come back, /disk/dropped 930,
the admin updates, every error code of the volume routes, and the same answers from every node."""
import shutil
import threading
import time

import pytest
import requests

from cmcluster import Cluster
from volutil import (CS, EC3P3, FakeBlobnode, Sim, chunk_report, metric, records, settled,
                     volumes, vstat, vuid, wait, wait_pool)

POOL = 4  # min_allocable_volume_count of these clusters
VOLCFG = {"min_allocable_volume_count": POOL, "check_expired_volume_interval_s": 1,
          "blob_node_config": {"client_timeout_ms": 3000}}


def err(r):
    return r.status_code, r.json()


def start(make, hosts=3, disks=4, volcfg=None, diskcfg=None, **kw):
    extra = {"volume_mgr_config": dict(VOLCFG, **(volcfg or {})),
             "disk_mgr_config": dict({"heartbeat_expire_interval_s": 3}, **(diskcfg or {}))}
    c = make(nodes=3, extra=extra, **kw)
    sim = Sim(c, hosts=hosts, disks=disks).start()
    return c, sim


@pytest.fixture(scope="module")
def fleet():
    """A 3-node cluster with 3 simulated blobnodes x 4 disks, its pool filled."""
    c = Cluster(nodes=3, extra={"volume_mgr_config": VOLCFG,
                                "disk_mgr_config": {"heartbeat_expire_interval_s": 3}})
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

    def make(**kw):
        c, sim = start(make_cluster, **kw)
        sims.append(sim)
        sim.wait(lambda: sim.stats()["registered"] == sim.hosts * sim.disks, what="registration")
        return c, sim

    yield make
    for sim in sims:
        if sim.proc.poll() is None:
            assert sim.stop() == 0


def get(c, node, vid):
    r = c.get(node, f"/volume/get?vid={vid}")
    assert r.status_code == 200, r.text
    return r.json()


def same_everywhere(c, path, nodes=(1, 2, 3)):
    got = [c.get(i, path) for i in nodes]
    assert all(g.status_code == got[0].status_code and g.text == got[0].text for g in got), \
        [g.text[:300] for g in got]
    return got[0]


def disk_hosts(sim):
    return {d["disk_id"]: d["host"] for d in sim.sim_disks()}


def sim_chunks(sim, disk=None):
    q = f"?diskid={disk}" if disk else ""
    return requests.get(sim.url(f"/sim/chunks{q}"), timeout=5).json()["chunks"]


def alloc(c, node=1, count=1, mode=EC3P3, ip=None, **kw):
    h = {"X-Real-Ip": ip} if ip else {}
    return c.post(node, "/volume/alloc", dict({"code_mode": mode, "count": count}, **kw), headers=h)


def idle_vid(c, node=1):
    """A volume that is idle right now."""
    return next(v["vid"] for v in volumes(c, node) if v["status"] == 1)


# ---- the pool ------------------------------------------------------------------------------

def test_pool_fills_to_target_and_refills(fleet):
    c, sim = fleet
    vols = volumes(c)
    assert len(vols) >= POOL
    hosts = disk_hosts(sim)
    for v in vols:
        assert v["code_mode"] == EC3P3 and v["create_by_node_id"] in (1, 2, 3)
        assert len(v["units"]) == 6
        disks = [u["disk_id"] for u in v["units"]]
        assert len(set(disks)) == 6  # distinct disks (hosts may repeat: host_aware is off)
        for i, u in enumerate(v["units"]):
            assert u["vuid"] == vuid(v["vid"], i, 1)
            assert u["host"] == hosts[u["disk_id"]]
        assert (v["total"], v["free"], v["used"], v["health_score"]) == (3 * CS, 3 * CS, 0, 0)
    # every unit's chunk exists on its blobnode
    have = {(ch["diskid"], ch["vuid"]) for ch in sim_chunks(sim)}
    assert all((u["disk_id"], u["vuid"]) in have for v in vols for u in v["units"])
    # allocation takes volumes out of the pool; the leader refills it
    before = vstat(c, 1)["total_volume"]
    r = alloc(c, node=2, count=2)
    assert r.status_code == 200, r.text
    wait(lambda: vstat(c, 1)["total_volume"] >= before + 2, what="refill")
    wait_pool(c, POOL)
    settled(c)
    stats = [vstat(c, i) for i in (1, 2, 3)]
    assert all(s == stats[0] for s in stats), stats
    assert stats[0]["active_volume"] >= 2
    assert stats[0]["total_volume"] == len(volumes(c, 3))


# ---- reads and their errors --------------------------------------------------------------------

def test_get_and_list(fleet):
    c, _ = fleet
    assert err(c.get(1, "/volume/get?vid=99999")) == (904, {"error": "volume not exist"})
    for bad in ("/volume/get", "/volume/get?vid=x", "/volume/get?vid=4294967296",
                "/volume/get?vid=-1", "/volume/list", "/volume/list?count=x",
                "/volume/list?count=2&marker=y", "/v2/volume/list", "/v2/volume/list?status=256",
                "/volume/unit/list", "/volume/allocated/list?host=1.2.3.4",
                "/volume/allocated/list?code_mode=11"):
        r = c.get(2, bad)
        assert r.status_code == 400 and r.json()["code"] == "Argument", (bad, r.text)
    vols = volumes(c)
    vids = [v["vid"] for v in vols]
    assert vids == sorted(vids)
    # paging: strictly after the marker; a marker that is no volume skips nothing
    page = c.get(3, f"/volume/list?count=2&marker={vids[0]}").json()
    assert [v["vid"] for v in page["volumes"]] == vids[1:3] and page["marker"] == vids[2]
    page = c.get(1, "/volume/list?count=1&marker=0").json()
    assert page["volumes"][0]["vid"] == vids[0]
    gap = vids[-1] + 1000
    assert c.get(1, f"/volume/list?count=5&marker={gap}").json() == {"volumes": [], "marker": 0}
    assert c.get(1, "/volume/list?count=0").json() == {"volumes": [], "marker": 0}
    assert c.get(1, "/volume/list?count=-3").json() == {"volumes": [], "marker": 0}
    assert len(c.get(1, "/volume/list?count=100000").json()["volumes"]) == min(len(vids), 2000)
    assert get(c, 2, vids[0]) == vols[0]
    # v2: by status; idle is refused, out of range is illegal
    assert err(c.get(1, "/v2/volume/list?status=1")) == \
        (931, {"error": "list volume v2 not support idle status"})
    for s in (0, 5, 255):
        assert err(c.get(1, f"/v2/volume/list?status={s}")) == (400, {"error": "Illegal Arguments"})
    active = c.get(2, "/v2/volume/list?status=2").json()
    assert active["marker"] == 0
    assert sorted(v["vid"] for v in active["volumes"]) == \
        [v["vid"] for v in vols if v["status"] == 2]
    assert c.get(2, "/v2/volume/list?status=4").json() == {"volumes": [], "marker": 0}
    # unit list: the units on a disk, ascending, with sizes; unknown disks have none
    assert c.get(1, "/volume/unit/list?disk_id=99999").json() == {"volume_unit_infos": []}
    d = vols[0]["units"][0]["disk_id"]
    units = c.get(3, f"/volume/unit/list?disk_id={d}").json()["volume_unit_infos"]
    want = sorted(u["vuid"] for v in vols for u in v["units"] if u["disk_id"] == d)
    assert [u["vuid"] for u in units] == want
    assert all(set(u) == {"vuid", "disk_id", "total", "free", "used", "compact", "host"}
               and u["disk_id"] == d and u["total"] == CS for u in units)


# ---- allocation, leases, retain ---------------------------------------------------------------

def test_alloc_rules_and_errors(fleet):
    c, _ = fleet
    wait_pool(c, POOL)
    invalid = (916, {"error": "alloc volume request params is invalid"})
    assert err(alloc(c, count=0)) == invalid
    assert err(alloc(c, count=-1)) == invalid
    bad_mode = (928, {"error": "request alloc volume codeMode not invalid"})
    assert err(alloc(c, mode=99)) == bad_mode
    assert err(alloc(c, mode=1)) == bad_mode  # a real code mode, but not configured
    # configured but disabled: there are no such volumes
    assert err(alloc(c, mode=2)) == (917, {"error": "no available volume"})
    for body in ('{"code_mode":11,"count":"x"}', '{"code_mode":300,"count":1}',
                 '{"code_mode":11,"count":1,"excludes":5}', '{"code_mode":11,"excludes":["a"]}',
                 '{"is_init":"yes"}', '', '[1]'):
        r = c.post(1, "/volume/alloc", body)
        assert r.status_code == 400 and r.json()["code"] == "Argument", (body, r.text)
    # excludes: vids the caller does not want
    idle = [v["vid"] for v in volumes(c) if v["status"] == 1]
    ex = idle[:-1]
    r = alloc(c, node=3, count=1, excludes=ex, ip="10.7.0.1")
    assert r.status_code == 200, r.text
    got = r.json()["alloc_volume_infos"]
    assert len(got) == 1 and got[0]["vid"] not in ex
    v = got[0]
    assert v["token"] == f"10.7.0.1;{v['vid']}" and v["status"] == 2
    now = time.time_ns()
    assert now + 590e9 < v["expire_time"] < now + 610e9  # retain_time_s 600, in nanoseconds
    # is_init / allocated list: the caller's leases of that code mode
    r = alloc(c, node=2, is_init=True, ip="10.7.0.1")
    assert [x["vid"] for x in r.json()["alloc_volume_infos"]] == [v["vid"]]
    assert r.json()["alloc_volume_infos"][0] == v
    assert alloc(c, node=2, is_init=True, ip="10.7.0.99").json() == {"alloc_volume_infos": None}
    assert alloc(c, is_init=True, ip="10.7.0.1", mode=2).json() == {"alloc_volume_infos": None}
    lst = c.get(1, "/volume/allocated/list?host=10.7.0.1&code_mode=11").json()
    assert lst == r.json()
    # more than there is: what is there (the leader creates more afterwards)
    r = alloc(c, count=1000, ip="10.7.0.2")
    assert r.status_code == 200 and 1 <= len(r.json()["alloc_volume_infos"]) <= 1000
    wait_pool(c, POOL)


def test_retain(fleet):
    c, _ = fleet
    wait_pool(c, POOL)
    ip = "10.8.0.1"
    vols = alloc(c, count=2, ip=ip).json()["alloc_volume_infos"]
    toks = [v["token"] for v in vols]
    other = alloc(c, count=1, ip="10.8.0.2").json()["alloc_volume_infos"][0]
    time.sleep(0.01)
    r = c.post(2, "/volume/retain", {"tokens": toks + [other["token"], "garbage", "10.8.0.1;x",
                                                       "10.8.0.1;99999", toks[0]]},
               headers={"X-Real-Ip": ip})
    assert r.status_code == 200, r.text
    got = r.json()["retain_vol_tokens"]
    assert sorted(t["token"] for t in got) == sorted(toks)  # each once, only the caller's
    assert all(t["expire_time"] > v["expire_time"] for t, v in zip(
        sorted(got, key=lambda t: t["token"]), sorted(vols, key=lambda v: v["token"])))
    assert get(c, 3, vols[0]["vid"])["status"] == 2
    # the four bad tokens (foreign, undecodable twice, unknown) are counted
    assert metric(c, c.wait_leader(), "blobstore_clusterMgr_vol_retain_error") == 4
    empty = {"retain_vol_tokens": []}
    assert c.post(1, "/volume/retain", {"tokens": []}).json() == empty
    assert c.post(1, "/volume/retain", {"tokens": toks}, headers={"X-Real-Ip": "10.8.0.9"}).json() \
        == empty
    for body in ('{"tokens":"a"}', '{"tokens":[1]}', "{"):
        r = c.post(1, "/volume/retain", body)
        assert r.status_code == 400 and r.json()["code"] == "Argument", (body, r.text)


def test_lease_expiry_back_to_idle(sim_cluster):
    c, sim = sim_cluster(volcfg={"retain_time_s": 2})
    wait_pool(c, POOL)
    ip = "10.9.0.1"
    v = alloc(c, count=1, ip=ip).json()["alloc_volume_infos"][0]
    assert get(c, 2, v["vid"])["status"] == 2
    # renewed while it lasts ...
    r = c.post(1, "/volume/retain", {"tokens": [v["token"]]}, headers={"X-Real-Ip": ip})
    assert [t["token"] for t in r.json()["retain_vol_tokens"]] == [v["token"]]
    # ... then lapses: the expiry scan returns it to idle on every node, the token stays
    wait(lambda: all(get(c, i, v["vid"])["status"] == 1 for i in (1, 2, 3)), timeout=10,
         what="expiry")
    assert c.post(1, "/volume/retain", {"tokens": [v["token"]]}, headers={"X-Real-Ip": ip}).json() \
        == {"retain_vol_tokens": []}
    assert alloc(c, is_init=True, ip=ip).json() == {"alloc_volume_infos": None}
    # every lease of a batch expires, not only the first ones
    vs = alloc(c, count=4, ip=ip).json()["alloc_volume_infos"]
    assert len(vs) == 4
    wait(lambda: all(get(c, 1, x["vid"])["status"] == 1 for x in vs), timeout=10, what="expiry")
    settled(c)
    assert all(vstat(c, i)["active_volume"] == 0 for i in (1, 2, 3))


# ---- lock / unlock ----------------------------------------------------------------------------

def test_lock_unlock_roundtrip(fleet):
    c, sim = fleet
    wait_pool(c, POOL)
    vid = idle_vid(c)
    calls = sim.stats()["calls"]
    assert err(c.post(1, "/volume/lock", {"vid": 99999})) == (904, {"error": "volume not exist"})
    assert err(c.post(1, "/volume/unlock", {"vid": 99999}))[0] == 904
    # unlocking an idle volume: done already (CubeFS v3.3 and later; the 2022 contract said 903)
    r = c.post(2, "/volume/unlock", {"vid": vid})
    assert (r.status_code, r.text) == (200, "")
    assert get(c, 1, vid)["status"] == 1
    assert c.post(2, "/volume/lock", {"vid": vid}).status_code == 200
    assert all(get(c, i, vid)["status"] == 3 for i in (1, 2, 3))
    # the leader sets every unit's chunk read-only on its blobnode
    sim.wait(lambda: sim.stats()["calls"]["readonly"] == calls["readonly"] + 6, what="readonly")
    units = get(c, 1, vid)["units"]
    ro = {(ch["diskid"], ch["vuid"]): ch["status"] for ch in sim_chunks(sim)}
    assert all(ro[(u["disk_id"], u["vuid"])] == 2 for u in units)
    assert c.post(3, "/volume/lock", {"vid": vid}).status_code == 200  # locked already: fine
    assert vstat(c, 1)["lock_volume"] >= 1
    active = alloc(c, count=1).json()["alloc_volume_infos"][0]["vid"]
    assert err(c.post(1, "/volume/lock", {"vid": active})) == \
        (902, {"error": "lock volume not allow"})
    assert err(c.post(1, "/volume/unlock", {"vid": active})) == \
        (903, {"error": "unlock volume not allow"})
    for body in ('{"vid":"1"}', '{"vid":-1}', "x"):
        assert c.post(1, "/volume/lock", body).json()["code"] == "Argument"
    # unlock: unlocking until every chunk is writable again, then idle
    assert c.post(1, "/volume/unlock", {"vid": vid}).status_code == 200
    assert get(c, 2, vid)["status"] in (4, 1)
    wait(lambda: all(get(c, i, vid)["status"] == 1 for i in (1, 2, 3)), what="idle after unlock")
    assert sim.stats()["calls"]["readwrite"] == calls["readwrite"] + 6
    rw = {(ch["diskid"], ch["vuid"]): ch["status"] for ch in sim_chunks(sim)}
    assert all(rw[(u["disk_id"], u["vuid"])] == 1 for u in units)
    assert c.post(1, "/volume/unlock", {"vid": vid}).status_code == 200  # idle again: a no-op
    assert sim.stats()["calls"]["readwrite"] == calls["readwrite"] + 6


def test_unlock_waits_for_blobnodes(sim_cluster):
    """A failing blobnode keeps the volume unlocking; the task retries until it answers."""
    c, sim = sim_cluster()
    wait_pool(c, POOL)
    vid = idle_vid(c)
    assert c.post(1, "/volume/lock", {"vid": vid}).status_code == 200
    sim.wait(lambda: sim.stats()["calls"]["readonly"] >= 6, what="readonly")
    # stop that blobnode from answering: freeze the simulator
    sim.proc.send_signal(19)  # SIGSTOP
    try:
        assert c.post(2, "/volume/unlock", {"vid": vid}).status_code == 200
        time.sleep(4)  # the client timeout is 3 s
        assert all(get(c, i, vid)["status"] == 4 for i in (1, 2, 3))
    finally:
        sim.proc.send_signal(18)  # SIGCONT
    wait(lambda: get(c, 1, vid)["status"] == 1, timeout=20, what="idle after retry")


# ---- unit migration (spec §4.11) ----------------------------------------------------------------

def test_unit_migration_four_calls(fleet):
    c, sim = fleet
    wait_pool(c, POOL)
    vid = idle_vid(c)
    vol = get(c, 1, vid)
    old = vol["units"][2]
    vdisks = {u["disk_id"] for u in vol["units"]}
    assert c.post(1, "/volume/lock", {"vid": vid}).status_code == 200
    # 1. a new chunk with the next epoch, on a disk the volume does not use
    r = c.post(2, "/volume/unit/alloc", {"vuid": old["vuid"]})
    assert r.status_code == 200, r.text
    new = r.json()
    assert new["vuid"] == old["vuid"] + 1 and new["disk_id"] not in vdisks
    assert any(ch["vuid"] == new["vuid"] for ch in sim_chunks(sim, new["disk_id"]))
    # a second reservation moves the epoch further; an older new_vuid no longer matches
    r2 = c.post(3, "/volume/unit/alloc", {"vuid": old["vuid"]}).json()
    assert r2["vuid"] == old["vuid"] + 2
    upd = {"old_vuid": old["vuid"], "new_vuid": new["vuid"], "new_disk_id": new["disk_id"]}
    assert err(c.post(1, "/volume/update", upd)) == \
        (919, {"error": "update volume unit, new vuid not match"})
    new = r2
    upd = {"old_vuid": old["vuid"], "new_vuid": new["vuid"], "new_disk_id": new["disk_id"]}
    assert err(c.post(1, "/volume/update", dict(upd, old_vuid=old["vuid"] + 7))) == \
        (918, {"error": "update volume unit, old vuid not match"})
    assert err(c.post(1, "/volume/update", dict(upd, new_disk_id=99999)))[0] == 911
    assert err(c.post(1, "/volume/update", dict(upd, old_vuid=vuid(99999, 0, 1))))[0] == 904
    # the new chunk is not on that disk: stat fails
    other = next(d for d in disk_hosts(sim) if d != new["disk_id"])
    assert err(c.post(1, "/volume/update", dict(upd, new_disk_id=other))) == \
        (927, {"error": "stat blob node chunk failed"})
    # 3. switch
    assert c.post(2, "/volume/update", upd).status_code == 200
    assert c.post(3, "/volume/update", upd).status_code == 200  # a retry: done already
    settled(c)
    for i in (1, 2, 3):
        u = get(c, i, vid)["units"][2]
        assert (u["vuid"], u["disk_id"]) == (new["vuid"], new["disk_id"])
    assert old["vuid"] not in [u["vuid"] for u in c.get(
        1, f"/volume/unit/list?disk_id={old['disk_id']}").json()["volume_unit_infos"]]
    assert new["vuid"] in [u["vuid"] for u in c.get(
        2, f"/volume/unit/list?disk_id={new['disk_id']}").json()["volume_unit_infos"]]
    # 4. release the old chunk; never the current one
    cur = {"vuid": new["vuid"], "disk_id": new["disk_id"]}
    r = c.post(1, "/volume/unit/release", cur)
    assert r.status_code == 400 and "current unit" in r.json()["error"]
    assert any(ch["vuid"] == old["vuid"] for ch in sim_chunks(sim, old["disk_id"]))
    rel = {"vuid": old["vuid"], "disk_id": old["disk_id"]}
    assert c.post(3, "/volume/unit/release", rel).status_code == 200
    assert not any(ch["vuid"] == old["vuid"] for ch in sim_chunks(sim, old["disk_id"]))
    # the blobnode's own error is passed through (the chunk is gone now)
    r = c.post(1, "/volume/unit/release", rel)
    assert r.status_code == 404 and r.json()["code"] == "SimError"
    assert err(c.post(1, "/volume/unit/release", dict(rel, disk_id=99999)))[0] == 911
    assert c.post(1, "/volume/unlock", {"vid": vid}).status_code == 200
    wait(lambda: get(c, 1, vid)["status"] == 1, what="unlock")


def test_unit_alloc_errors_and_concurrency(fleet):
    c, sim = fleet
    wait_pool(c, POOL)
    vid = idle_vid(c)
    assert err(c.post(1, "/volume/unit/alloc", {"vuid": vuid(99999, 0, 1)})) == \
        (904, {"error": "volume not exist"})
    assert err(c.post(1, "/volume/unit/alloc", {"vuid": vuid(vid, 6, 1)})) == \
        (924, {"error": "volume unit not exist"})
    for body in ('{"vuid":"1"}', '{"vuid":-5}', '{"vuid":18446744073709551616}'):
        assert c.post(1, "/volume/unit/alloc", body).json()["code"] == "Argument"
    # reservations racing for the same unit: one wins an epoch, the others are told 914
    target = get(c, 1, vid)["units"][1]["vuid"]
    seen = {}

    def one(k):
        r = c.post(1 + k % 3, "/volume/unit/alloc", {"vuid": target})
        seen[k] = (r.status_code, r.json())

    codes = set()
    for _ in range(6):
        ts = [threading.Thread(target=one, args=(k,)) for k in range(12)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        codes |= {s for s, _ in seen.values()}
        epochs = [b["vuid"] & 0xffffff for s, b in seen.values() if s == 200]
        assert len(epochs) == len(set(epochs))
        assert all(s in (200, 914) for s, _ in seen.values()), seen
        assert all(b == {"error": "alloc volume unit concurrently"}
                   for s, b in seen.values() if s == 914)
        if 914 in codes:
            break
    assert codes == {200, 914}


def test_update_stat_answers(fleet):
    """A blobnode whose stat answer names another disk (920) or fails (927)."""
    c, _ = fleet
    wait_pool(c, POOL)
    fake = FakeBlobnode()
    try:
        did = c.post(1, "/diskid/alloc", "null").json()["disk_id"]
        d = {"cluster_id": 1, "idc": "z0", "rack": "rx", "host": fake.url, "path": "/fake",
             "status": 1, "readonly": False, "disk_id": did, "used": 0, "free": 1 << 40,
             "size": 1 << 40, "max_chunk_cnt": 0, "free_chunk_cnt": 0, "used_chunk_cnt": 0}
        assert c.post(1, "/disk/add", d).status_code == 200
        # keep the fake disk out of placement: readonly
        assert c.post(1, "/disk/access", {"disk_id": did, "readonly": True}).status_code == 200
        vid = idle_vid(c)
        old = get(c, 1, vid)["units"][0]
        new = c.post(1, "/volume/unit/alloc", {"vuid": old["vuid"]}).json()
        upd = {"old_vuid": old["vuid"], "new_vuid": new["vuid"], "new_disk_id": did}
        fake.answers["stat"] = (200, {"diskid": did + 1, "vuid": new["vuid"]})
        assert err(c.post(2, "/volume/update", upd)) == \
            (920, {"error": "update volume unit, new diskID not match"})
        fake.answers["stat"] = (500, {"error": "oops"})
        assert err(c.post(2, "/volume/update", upd))[0] == 927
        fake.answers["stat"] = (200, {"no": "diskid"})
        assert err(c.post(2, "/volume/update", upd))[0] == 927
        assert [p for m, p in fake.calls] == [f"/chunk/stat/diskid/{did}/vuid/{new['vuid']}"] * 3
        # a release passes the blobnode's answer through, status and body
        fake.answers["release"] = (612, {"code": "Busy", "error": "chunk busy"})
        r = c.post(3, "/volume/unit/release", {"vuid": old["vuid"] - 1 + 0x1000000, "disk_id": did})
        assert (r.status_code, r.json()) == (612, {"code": "Busy", "error": "chunk busy"})
        assert get(c, 1, vid)["units"][0] == old
    finally:
        fake.close()


# ---- chunk reports, compact, health -------------------------------------------------------------

def test_chunk_report_updates_sizes(fleet):
    c, _ = fleet
    wait_pool(c, POOL)
    vid = idle_vid(c)
    units = get(c, 1, vid)["units"]
    recs = [dict(vuid=u["vuid"], disk_id=u["disk_id"], total=CS, used=1000 * (i + 1),
                 free=CS - 1000 * (i + 1)) for i, u in enumerate(units)]
    recs.append(dict(vuid=units[0]["vuid"] + 5, disk_id=1, total=CS, used=CS, free=0))  # stale
    recs.append(dict(vuid=vuid(99999, 0, 1), disk_id=1, total=1, used=1, free=0))  # unknown
    hdr = {"Content-Type": "application/x-www-form-urlencoded"}
    r = c.post(2, "/chunk/report", chunk_report(recs), headers=hdr)
    assert (r.status_code, r.text) == (200, ""), r.text
    settled(c)
    for i in (1, 2, 3):  # the fullest unit, times N = 3
        v = get(c, i, vid)
        assert (v["total"], v["used"], v["free"]) == (3 * CS, 18000, 3 * (CS - 6000))
    listed = c.get(1, f"/volume/unit/list?disk_id={units[3]['disk_id']}").json()
    u = next(x for x in listed["volume_unit_infos"] if x["vuid"] == units[3]["vuid"])
    assert (u["used"], u["free"], u["total"]) == (4000, CS - 4000, CS)
    assert c.post(1, "/chunk/report", chunk_report([]), headers=hdr).status_code == 200
    # bad bodies: 900 for what does not decode, 400 above 8 MiB (as the reference answers in both
    # contracts; this node answered 413 before), 400 without a length
    body = chunk_report(recs[:2])
    for bad in (body[:-1], body + b"x", b"\x00\x00", b""):
        assert err(c.post(1, "/chunk/report", bad, headers=hdr)) == \
            (900, {"error": "cm: unexpected error"})
    r = c.post(1, "/chunk/report", b"\x00" * ((8 << 20) + 1), headers=hdr)
    assert err(r) == (400, {"error": "Illegal Arguments"})
    r = requests.post(c.url(1, "/chunk/report"), data=iter([body[:50], body[50:]]), headers=hdr)
    assert (r.status_code, r.json()["code"]) == (400, "Argument")


def test_compact_flag_and_health(fleet):
    c, _ = fleet
    wait_pool(c, POOL)
    vid = idle_vid(c)
    units = get(c, 1, vid)["units"]
    assert err(c.post(1, "/chunk/set/compact", {"vuid": vuid(99999, 0, 1), "compact": True})) == \
        (904, {"error": "volume not exist"})
    for bad_vuid in (units[0]["vuid"] + 1, vuid(vid, 6, 1)):
        assert err(c.post(1, "/chunk/set/compact", {"vuid": bad_vuid, "compact": True})) == \
            (924, {"error": "volume unit not exist"})
    assert c.post(1, "/chunk/set/compact", '{"vuid":1,"compact":"yes"}').json()["code"] == "Argument"
    assert c.post(2, "/chunk/set/compact", {"vuid": units[0]["vuid"], "compact": True}).status_code \
        == 200
    settled(c)
    assert all(get(c, i, vid)["health_score"] == -1 for i in (1, 2, 3))
    lst = c.get(1, f"/volume/unit/list?disk_id={units[0]['disk_id']}").json()["volume_unit_infos"]
    assert next(u for u in lst if u["vuid"] == units[0]["vuid"])["compact"] is True
    # EC3P3 tolerates one bad unit; a second makes the volume unallocatable (the pool refills)
    assert c.post(3, "/chunk/set/compact", {"vuid": units[1]["vuid"], "compact": True}).status_code \
        == 200
    assert get(c, 1, vid)["health_score"] == -2
    wait_pool(c, POOL)
    r = alloc(c, count=100, ip="10.6.0.1")
    assert vid not in [v["vid"] for v in r.json()["alloc_volume_infos"]]
    for u in units[:2]:
        assert c.post(1, "/chunk/set/compact", {"vuid": u["vuid"], "compact": False}).status_code \
            == 200
    assert all(get(c, i, vid)["health_score"] == 0 for i in (1, 2, 3))
    wait_pool(c, POOL)


def test_disk_health_follows_the_disks(sim_cluster):
    """Broken, readonly, expired (no heartbeats) and back: the health of the volumes on that disk."""
    c, sim = sim_cluster(diskcfg={"heartbeat_expire_interval_s": 2})
    wait_pool(c, POOL)
    vols = volumes(c)

    def health_of(disk, node=1):
        return {v["vid"]: get(c, node, v["vid"])["health_score"] for v in vols
                if disk in [u["disk_id"] for u in v["units"]]}

    # readonly: immediately, on every node, when /disk/access answers
    d = vols[0]["units"][0]["disk_id"]
    assert c.post(2, "/disk/access", {"disk_id": d, "readonly": True}).status_code == 200
    for i in (1, 2, 3):
        assert set(health_of(d, i).values()) == {-1}
    assert c.post(2, "/disk/access", {"disk_id": d, "readonly": False}).status_code == 200
    assert set(health_of(d).values()) == {0}
    # silent: the heartbeat lease ends and the watcher marks it, then it comes back
    q = vols[1]["units"][1]["disk_id"]
    requests.post(sim.url(f"/sim/disk/{q}?silent=1"))
    wait(lambda: set(health_of(q).values()) == {-1}, timeout=15, what="expired disk")
    settled(c)
    assert set(health_of(q, 3).values()) == {-1}
    requests.post(sim.url(f"/sim/disk/{q}?silent=0"))
    wait(lambda: set(health_of(q).values()) == {0}, timeout=15, what="disk back")
    # broken (reported by the blobnode): for good
    b = vols[2]["units"][2]["disk_id"]
    requests.post(sim.url(f"/sim/disk/{b}?broken=1"))
    wait(lambda: set(health_of(b).values()) == {-1}, timeout=15, what="broken disk")
    settled(c)
    assert set(health_of(b, 2).values()) == {-1}
    # a disk set broken through the API is marked before the answer
    x = next(u["disk_id"] for v in vols for u in v["units"] if u["disk_id"] not in (b, d, q))
    assert c.post(3, "/disk/set", {"disk_id": x, "status": 2}).status_code == 200
    for vid, h in health_of(x, 1).items():
        units = {u["disk_id"] for u in get(c, 1, vid)["units"]}
        assert h == -len(units & {b, x})
    # new volumes avoid the broken disks
    wait_pool(c, POOL)
    for v in volumes(c):
        if v["vid"] > max(w["vid"] for w in vols):
            assert not {b, x} & {u["disk_id"] for u in v["units"]}


def test_dropped_disk_with_units_is_930(sim_cluster):
    c, sim = sim_cluster(hosts=3, disks=3)
    wait_pool(c, POOL)
    vols = volumes(c)
    d = vols[0]["units"][0]["disk_id"]
    on_d = [(v["vid"], i, u) for v in vols for i, u in enumerate(v["units"]) if u["disk_id"] == d]
    # CubeFS v3.2 and later drop only a readonly disk (the 2022 contract any normal one)
    assert c.post(1, "/disk/access", {"disk_id": d, "readonly": True}).status_code == 200
    assert c.post(1, "/disk/drop", {"disk_id": d}).status_code == 200
    assert err(c.post(2, "/disk/dropped", {"disk_id": d})) == \
        (930, {"error": "dropped disk still has volume unit remain, migrate them firstly"})
    # migrate every unit away, as the scheduler does, then the drop completes
    for vid, i, u in on_d:
        assert c.post(1, "/volume/lock", {"vid": vid}).status_code in (200, 902)
        new = c.post(1, "/volume/unit/alloc", {"vuid": u["vuid"]}).json()
        assert new["disk_id"] != d
        upd = {"old_vuid": u["vuid"], "new_vuid": new["vuid"], "new_disk_id": new["disk_id"]}
        assert c.post(2, "/volume/update", upd).status_code == 200
        assert c.post(3, "/volume/unit/release", {"vuid": u["vuid"], "disk_id": d}).status_code \
            == 200
    # the pool keeps creating volumes; a dropping disk is never chosen again
    assert c.get(1, f"/volume/unit/list?disk_id={d}").json() == {"volume_unit_infos": []}
    assert c.post(2, "/disk/dropped", {"disk_id": d}).status_code == 200
    assert c.get(1, f"/disk/info?disk_id={d}").json()["status"] == 5


# ---- admin ---------------------------------------------------------------------------------------

def test_admin_updates(fleet):
    c, sim = fleet
    wait_pool(c, POOL)
    vid = idle_vid(c)
    v = get(c, 1, vid)
    assert err(c.post(1, "/admin/update/volume", {"vid": 99999, "status": 3}))[0] == 904
    body = dict(vid=vid, code_mode=2, status=4, health_score=-7, total=0, free=12345, used=0,
                create_by_node_id=9)
    assert c.post(2, "/admin/update/volume", body).status_code == 200
    w = get(c, 3, vid)
    # status and free change; code_mode, health_score, create_by_node_id and zeros do not
    assert (w["status"], w["free"], w["total"], w["used"], w["code_mode"], w["health_score"],
            w["create_by_node_id"]) == (4, 12345, v["total"], v["used"], 11, v["health_score"],
                                        v["create_by_node_id"])
    assert c.post(2, "/admin/update/volume", dict(body, status=1, free=v["free"])).status_code == 200
    assert get(c, 1, vid)["status"] == 1
    # units: epochs, disk, compact; the unit index moves with the disk
    u = v["units"][4]
    other = next(d for d in disk_hosts(sim) if d not in [x["disk_id"] for x in v["units"]])
    base = dict(epoch=3, next_epoch=5, vuid=u["vuid"], disk_id=other, total=1, free=1, used=1,
                compact=True, host="ignored")
    assert err(c.post(1, "/admin/update/volume/unit", dict(base, vuid=vuid(99999, 0, 1))))[0] \
        == 904
    r = c.post(1, "/admin/update/volume/unit", dict(base, vuid=vuid(vid, 9, 1)))
    assert r.status_code == 400 and "index" in r.json()["error"]
    for e, n in ((0, 5), (3, 0), (1 << 24, 1 << 24)):
        assert err(c.post(1, "/admin/update/volume/unit", dict(base, epoch=e, next_epoch=n))) == \
            (500, {"error": "args not valid", "code": "InternalServerError"})
    assert c.post(1, "/admin/update/volume/unit", dict(base, epoch=6)).status_code == 400
    assert c.post(1, "/admin/update/volume/unit", dict(base, disk_id=0)).status_code == 400
    assert err(c.post(1, "/admin/update/volume/unit", dict(base, disk_id=99999)))[0] == 911
    assert c.post(3, "/admin/update/volume/unit", base).status_code == 200
    settled(c)
    w = get(c, 2, vid)["units"][4]
    assert (w["vuid"], w["disk_id"]) == (vuid(vid, 4, 3), other)
    assert get(c, 2, vid)["health_score"] == -1  # compacting
    assert vuid(vid, 4, 3) in [x["vuid"] for x in c.get(
        1, f"/volume/unit/list?disk_id={other}").json()["volume_unit_infos"]]
    assert u["vuid"] not in [x["vuid"] for x in c.get(
        1, f"/volume/unit/list?disk_id={u['disk_id']}").json()["volume_unit_infos"]]
    # put it back as it was
    back = dict(base, epoch=1, next_epoch=5, disk_id=u["disk_id"], compact=False)
    assert c.post(3, "/admin/update/volume/unit", dict(back, vuid=vuid(vid, 4, 3))).status_code \
        == 200
    assert get(c, 1, vid)["units"][4] == u


# ---- every node, metrics ---------------------------------------------------------------------------

def test_same_answers_from_every_node(fleet):
    c, _ = fleet
    wait_pool(c, POOL)
    settled(c)
    same_everywhere(c, "/volume/list?count=500")
    same_everywhere(c, "/v2/volume/list?status=2")
    vols = volumes(c)
    for v in vols[:3]:
        same_everywhere(c, f"/volume/get?vid={v['vid']}")
        same_everywhere(c, f"/volume/unit/list?disk_id={v['units'][0]['disk_id']}")
    stats = [vstat(c, i) for i in (1, 2, 3)]
    assert all(s == stats[0] for s in stats)
    assert stats[0]["total_volume"] == len(vols)
    assert stats[0]["idle_volume"] == sum(v["status"] == 1 for v in vols)
    # /metrics and the dashboard read the same numbers
    for i in (1, 2, 3):
        assert metric(c, i, "blobstore_clusterMgr_vol_status_vol_count", status="total") == \
            stats[0]["total_volume"]
        assert c.get(i, "/dashboard/data").json()["stat"]["volume_stat"] == stats[0]
        rec = records(c, i)
        assert rec["pending"] == 0 and rec["created"] == len(vols)
        assert rec["created"] + rec["aborted"] == rec["scope"]
