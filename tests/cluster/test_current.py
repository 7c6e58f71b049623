"""The daemons of the CubeFS release people run today (v3.5.x), and of the 2022 one, through a
blobnode fleet's life on a real cluster: the simulated fleet starts (in the current generation it
registers as BLOBNODE, adds its nodes, then its disks under them), heartbeats, gets volumes created
on its chunks; then a scheduler-like client drains one host: it reads and creates its task switches
(true/false, auto-created when missing), records its tasks in the KV store, switches the host's
disks readonly and drops them, migrates every unit off them (lock, unit alloc, update, release,
unlock, and unlock of an idle volume), marks the disks dropped and, in the current generation,
drops the node. Every node answers the same at the end."""
import base64
import json
import time

import pytest
import requests

from volutil import Sim, settled, wait, wait_pool

POOL = 4
VOLCFG = {"min_allocable_volume_count": POOL, "check_expired_volume_interval_s": 1,
          "blob_node_config": {"client_timeout_ms": 3000}}


def b64(obj):
    return base64.b64encode(json.dumps(obj).encode()).decode()


def same_everywhere(c, path, nodes=(1, 2, 3), view=lambda x: x):
    """Every node answers the same `view` of the answer (heartbeats keep changing the space
    numbers of disks while the fleet runs: compare what they do not touch)."""
    got = [c.get(i, path) for i in nodes]
    assert all(g.status_code == 200 for g in got), [g.text[:300] for g in got]
    views = [view(g.json()) for g in got]
    assert all(v == views[0] for v in views), views
    return got[0].json()


def identity(listing):
    return [(d["disk_id"], d["node_id"], d["disk_set_id"], d["host"], d["status"])
            for d in listing["disks"]]


class Scheduler:
    """What a scheduler does against clustermgr, through every node in turn as the Go client
    spreads its calls."""

    def __init__(self, c, generation):
        self.c = c
        self.k = 0
        self.on, self.off = ("true", "false") if generation == "current" else ("Enable", "Disable")

    def node(self):
        self.k += 1
        return 1 + self.k % 3

    def post(self, path, body):
        r = self.c.post(self.node(), path, body)
        assert r.status_code == 200, (path, body, r.status_code, r.text)
        return r.json() if r.text else None

    def get(self, path):
        return self.c.get(self.node(), path)

    def switch(self, key):
        """The v3.5.1 client: read; on Not Found create it off."""
        r = self.get(f"/config/get?key={key}")
        if r.status_code == 404:
            assert "Not Found" in r.json()["error"]
            self.post("/config/set", {"key": key, "value": "false"})
            r = self.get(f"/config/get?key={key}")
        assert r.status_code == 200, r.text
        return r.json()

    def migrate(self, unit, task_id):
        """One unit off its disk: lock, a new unit, switch, release the old one, unlock."""
        vid = unit["vuid"] >> 32
        key = f"migrating-disk_drop-{task_id}"
        self.post("/kv/set", {"key": key, "value": b64({"vid": vid, "state": "inited"})})
        # a volume whose unlock task still runs (another unit of it moved just before) is not
        # lockable yet: 902, as a scheduler sees it, and it tries again
        end = time.time() + 20
        while (r := self.c.post(self.node(), "/volume/lock", {"vid": vid})).status_code == 902:
            assert time.time() < end, r.text
            time.sleep(0.1)
        assert r.status_code == 200, r.text
        new = self.post("/volume/unit/alloc", {"vuid": unit["vuid"], "disk_id": unit["disk_id"]})
        assert new["vuid"] > unit["vuid"] and new["disk_id"] != unit["disk_id"]
        self.post("/kv/set", {"key": key, "value": b64({"vid": vid, "state": "prepared"})})
        upd = {"old_vuid": unit["vuid"], "new_vuid": new["vuid"], "new_disk_id": new["disk_id"]}
        self.post("/volume/update", upd)
        self.post("/volume/update", upd)  # a retry after a lost answer: done already, not 918
        self.post("/volume/unit/release", {"vuid": unit["vuid"], "disk_id": unit["disk_id"]})
        self.post("/volume/unlock", {"vid": vid})
        self.post("/volume/unlock", {"vid": vid})  # idle or unlocking already: 200 since v3.3
        self.post("/kv/delete/" + key, None)


@pytest.mark.parametrize("generation", ["current", "2022"])
def test_fleet_life_and_scheduler_drain(make_cluster, generation):
    fmt = {"task_switch_format": generation}
    c = make_cluster(nodes=3, extra=dict(fmt, volume_mgr_config=VOLCFG,
                                         disk_mgr_config={"heartbeat_expire_interval_s": 3}))
    sim = Sim(c, hosts=4, disks=3, extra=["--generation", generation]).start()
    try:
        sim.wait(lambda: sim.stats()["registered"] == 12, what="registration")
        disks = same_everywhere(c, "/disk/list?count=200", view=identity)["disks"]
        assert len(disks) == 12
        topo = same_everywhere(c, "/topo/info")
        if generation == "current":
            # registered as services, as nodes, then their disks under the nodes
            svc = c.get(2, "/service/get?name=BLOBNODE").json()
            assert len(svc["nodes"]) == 4
            nodes = {d["node_id"] for d in disks}
            assert 0 not in nodes and len(nodes) == 4
            assert all(d["disk_set_id"] >= 2 for d in disks)
            hdd = topo["all_node_sets"]["blobnode"]["hdd"]
            assert sorted(n for s in hdd.values() for n in s["nodes"]) == sorted(nodes)
            in_sets = sorted(d for s in hdd.values() for m in s["disk_sets"].values() for d in m)
            assert in_sets == sorted(d["disk_id"] for d in disks)
        else:
            assert all((d["node_id"], d["disk_set_id"]) == (0, 0) for d in disks)
            assert topo["all_node_sets"] == {"blobnode": {}}
        # heartbeats and volumes on the fleet's chunks
        wait_pool(c, POOL)
        st = c.stat(1)["space_stat"]
        assert st["writable_space"] > 0 and st["total_disk"] == 12
        assert st["total_blob_node"] == 4

        # the scheduler drains the first host
        s = Scheduler(c, generation)
        for key in ("disk_drop", "disk_repair", "balance", "volume_inspect", "blob_delete"):
            assert s.switch(key) == s.off
        s.post("/config/set", {"key": "disk_drop", "value": "true"})
        assert s.switch("disk_drop") == s.on
        host = disks[0]["host"]
        victims = [d["disk_id"] for d in disks if d["host"] == host]
        assert len(victims) == 3
        for d in victims:
            r = c.post(1, "/disk/drop", {"disk_id": d})
            assert r.status_code == 926, r.text  # readonly first
            s.post("/disk/access", {"disk_id": d, "readonly": True})
            s.post("/disk/drop", {"disk_id": d})
        dropping = s.get("/disk/droppinglist").json()["disks"]
        assert sorted(d["disk_id"] for d in dropping) == sorted(victims)
        task = 0
        for d in victims:
            units = s.get(f"/volume/unit/list?disk_id={d}").json()["volume_unit_infos"]
            for u in units:
                task += 1
                s.migrate(u, task)
            assert s.get(f"/volume/unit/list?disk_id={d}").json()["volume_unit_infos"] == []
            s.post("/disk/dropped", {"disk_id": d})
        assert task > 0  # the pool had units on the host
        left = s.get("/kv/list?prefix=migrating-disk_drop-&count=1000").json()
        assert left["kvs"] == []
        for i in (1, 2, 3):
            for d in victims:
                assert c.get(i, f"/disk/info?disk_id={d}").json()["status"] == 5
        if generation == "current":
            node_id = disks[0]["node_id"]
            s.post("/node/drop", {"node_id": node_id})
            for i in (1, 2, 3):
                assert c.get(i, f"/node/info?node_id={node_id}").json()["status"] == 2
            topo = same_everywhere(c, "/topo/info")
            hdd = topo["all_node_sets"]["blobnode"]["hdd"]
            assert node_id not in [n for st in hdd.values() for n in st["nodes"]]
            assert not set(victims) & {x for st in hdd.values() for m in st["disk_sets"].values()
                                       for x in m}
            # the simulated blobnode was told its disks are dropped and stopped using them
            wait(lambda: all(sim_disk["status"] == 5 for sim_disk in sim.sim_disks()
                             if sim_disk["disk_id"] in victims), what="dropped disks seen")
        # the pool refills on the other hosts; once the fleet is quiet every node answers the
        # same
        wait_pool(c, POOL)
        assert sim.stop() == 0
        settled(c)
        same_everywhere(c, "/disk/list?count=200")
        same_everywhere(c, "/topo/info")
        vols = c.get(1, "/volume/list?count=2000").json()["volumes"]
        assert all(u["disk_id"] not in victims for v in vols for u in v["units"])
    finally:
        if sim.proc.poll() is None:
            sim.proc.kill()
