"""Volume creation under crashes, and volume state across snapshots, restarts and new members.

The leader is killed (SIGKILL) again and again while volumes are being created on slowed
blobnodes. Afterwards no vid is lost or reused, no half-made volume is visible, every volume's
units sit on distinct disks of distinct hosts (host_aware), every pending record is resolved,
no chunk is left behind, and the pool refills."""
import random
import signal
import time

import requests

from volutil import EC3P3, Sim, records, settled, volumes, vstat, wait, wait_pool


def knobs(sim, **kw):
    q = "&".join(f"{k}={v}" for k, v in kw.items())
    for d in sim.sim_disks():
        # a host serves its calls one at a time: a knob may wait behind slow chunk calls
        r = requests.post(sim.url(f"/sim/disk/{d['disk_id']}?{q}"), timeout=60)
        assert r.status_code == 200


def check_volumes(c, sim, nodes, pool):
    """The invariants after the dust settled."""
    lid = settled(c, nodes)
    lists = [volumes(c, i) for i in nodes]
    assert all(v == lists[0] for v in lists), "nodes disagree on the volumes"
    vols = lists[0]
    rec = records(c, lid)
    # every vid handed out is a volume or an aborted (never reused) one; nothing is pending
    assert rec["pending"] == 0, rec
    assert rec["created"] == len(vols)
    assert rec["created"] + rec["aborted"] == rec["scope"], rec
    for i in nodes:
        assert records(c, i) == rec
    hosts = {d["disk_id"]: d["host"] for d in sim.sim_disks()}
    current = set()
    for v in vols:
        assert v["status"] in (1, 2) and len(v["units"]) == 6, v
        disks = [u["disk_id"] for u in v["units"]]
        assert len(set(disks)) == 6, v
        assert len({hosts[d] for d in disks}) == 6, v  # host_aware: distinct hosts
        for i, u in enumerate(v["units"]):
            assert u["vuid"] >> 32 == v["vid"] and (u["vuid"] >> 24) & 0xff == i
            current.add((u["disk_id"], u["vuid"]))
    # every unit's chunk exists, and nothing else does: no half-made volume left chunks behind
    chunks = {(ch["diskid"], ch["vuid"])
              for ch in requests.get(sim.url("/sim/chunks"), timeout=5).json()["chunks"]}
    assert current <= chunks, current - chunks
    assert chunks == current, sorted(chunks - current)
    assert all(vstat(c, i)["can_alloc_volume"] >= pool for i in nodes)
    return vols


def test_kill_leader_during_creation(make_cluster):
    pool = 8
    c = make_cluster(nodes=3, extra={
        "volume_mgr_config": {"min_allocable_volume_count": pool,
                              "check_expired_volume_interval_s": 1,
                              "blob_node_config": {"client_timeout_ms": 3000}},
        "disk_mgr_config": {"heartbeat_expire_interval_s": 6, "host_aware": True}})
    sim = Sim(c, hosts=9, disks=2, interval=0.5).start()
    rng = random.Random(7)
    try:
        sim.wait(lambda: sim.stats()["registered"] == 18, what="registration")
        knobs(sim, delay_ms=120)  # every chunk call takes a while: creations are in flight
        kills = 0
        for rnd in range(4):
            lid = c.wait_leader()
            # drain the pool a little so that the leader has volumes to create
            c.post(lid, "/volume/alloc", {"code_mode": EC3P3, "count": 3})
            wait(lambda: records(c, lid)["pending"] > 0, timeout=30, what="a creation in flight",
                 every=0.02)
            time.sleep(rng.uniform(0, 0.4))
            c.kill(lid, signal.SIGKILL)
            kills += 1
            c.wait_leader(among=[i for i in (1, 2, 3) if i != lid], timeout=20)
            c.start(lid)
        assert kills == 4
        knobs(sim, delay_ms=0)
        lid = c.wait_leader()
        wait_pool(c, pool, timeout=60)
        wait(lambda: all(records(c, i)["pending"] == 0 for i in (1, 2, 3)), timeout=30,
             what="pending records resolved")
        # superseded chunks are released once more after twice the blobnode timeout
        time.sleep(6.5)
        vols = check_volumes(c, sim, (1, 2, 3), pool)
        # the takeovers were real: new leaders found half-made volumes and finished them (with
        # the next epoch) or cleaned them up
        took = sum(c.log_text(i).count("taking over the creation of volume") for i in (1, 2, 3))
        bumped = [v for v in vols if any(u["vuid"] & 0xffffff > 1 for u in v["units"])]
        print(f"{kills} kills, {took} takeovers, {len(bumped)} volumes finished by a new leader, "
              f"{records(c, lid)['aborted']:.0f} aborted, {len(vols)} volumes")
        assert took >= 1 and (bumped or records(c, lid)["aborted"] > 0)
        assert sim.stop() == 0
    finally:
        if sim.proc.poll() is None:
            sim.proc.kill()


def test_volumes_survive_snapshots_restarts_and_new_members(make_cluster):
    c = make_cluster(nodes=3, max_nodes=4, snapshot_threshold=64, extra={
        "volume_mgr_config": {"min_allocable_volume_count": 6},
        "disk_mgr_config": {"heartbeat_expire_interval_s": 5}})
    sim = Sim(c, hosts=4, disks=3, interval=0.2).start()
    try:
        sim.wait(lambda: sim.stats()["registered"] == 12, what="registration")
        wait_pool(c, 6)
        lid = c.wait_leader()
        # a state with every kind of record: leases, a lock task done, compacting units,
        # a disk marked bad, replaced units
        vols = c.post(lid, "/volume/alloc", {"code_mode": EC3P3, "count": 2},
                      headers={"X-Real-Ip": "10.1.2.3"}).json()["alloc_volume_infos"]
        idle = [v for v in volumes(c) if v["status"] == 1]
        assert c.post(1, "/volume/lock", {"vid": idle[0]["vid"]}).status_code == 200
        u = idle[1]["units"][0]
        assert c.post(2, "/chunk/set/compact", {"vuid": u["vuid"], "compact": True}).status_code \
            == 200
        new = c.post(3, "/volume/unit/alloc", {"vuid": idle[2]["units"][3]["vuid"]}).json()
        assert c.post(1, "/volume/update", {"old_vuid": idle[2]["units"][3]["vuid"],
                                            "new_vuid": new["vuid"],
                                            "new_disk_id": new["disk_id"]}).status_code == 200
        assert c.post(1, "/disk/access", {"disk_id": vols[0]["units"][0]["disk_id"],
                                          "readonly": True}).status_code == 200
        wait_pool(c, 6)
        # heartbeats keep the log moving: let several snapshots happen
        time.sleep(3)
        lid = settled(c)
        want = volumes(c, lid)
        stat = vstat(c, lid)
        # a node restarts from its snapshot and log
        follower = next(i for i in (1, 2, 3) if i != lid)
        c.kill(follower, signal.SIGKILL)
        c.start(follower)
        # a new member catches up from scratch (by snapshot: the log was compacted)
        c.start(4)
        body = {"peer_id": 4, "host": c.raft_addr(4), "member_type": 1, "node_host": c.http(4)}
        assert c.post(lid, "/member/add", body).status_code == 200
        lid = c.wait_leader()
        target = c.stat(lid)["raft_status"]["commit"]
        wait(lambda: c.stat(4)["raft_status"]["applied"] >= target, timeout=30,
             what="the new member caught up")
        settled(c, nodes=(1, 2, 3, 4))
        now = volumes(c, lid)
        for i in (follower, 4):
            assert volumes(c, i, stale=True) == now
            assert vstat(c, i) == vstat(c, lid)
        # nothing changed meanwhile (the pool was full already)
        assert now == want and vstat(c, lid) == stat
        node4 = c.log_text(4)
        assert "restor" in node4 or "snapshot" in node4
        assert sim.stop() == 0
    finally:
        if sim.proc.poll() is None:
            sim.proc.kill()
