"""Disks and blobnodes: every /disk route with its errors, the status lifecycle, the drop workflow,
listing order and paging, heartbeat expiry and exact space_stat in /stat, a leader change in the
middle of a heartbeat stream, and the simulated blobnode fleet end to end."""
import json
import os
import random
import signal
import subprocess
import threading
import time

import requests

from cmcluster import BUILD, ROOT, Cluster, pick_ports

CS = 16777216  # chunk_size of the generated configs
TIB = 1 << 40
SIM = os.path.join(ROOT, BUILD, "blobnode-sim")


def alloc(c, node=1):
    r = c.post(node, "/diskid/alloc", "null")
    assert r.status_code == 200, r.text
    return r.json()["disk_id"]


def disk(disk_id, host, path, idc="z0", rack="r0", size=TIB, free=None, status=1, **kw):
    d = {"cluster_id": 1, "idc": idc, "rack": rack, "host": host, "path": path, "status": status,
         "readonly": False, "create_time": "2022-03-24T17:33:45.123456789+08:00",
         "last_update_time": "2022-03-24T17:33:45.123456789+08:00", "disk_id": disk_id, "used": 0,
         "free": size if free is None else free, "size": size, "max_chunk_cnt": 0,
         "free_chunk_cnt": 0, "used_chunk_cnt": 0, "disk_set_id": 0, "node_id": 0}
    d.update(kw)
    return d


def add(c, body, node=1):
    r = c.post(node, "/disk/add", body)
    assert (r.status_code, r.text) == (200, ""), r.text
    return body["disk_id"]


def new_disk(c, host, path, node=1, **kw):
    return add(c, disk(alloc(c, node), host, path, **kw), node)


def err(r):
    return r.status_code, r.json()


def info(c, node, disk_id):
    r = c.get(node, f"/disk/info?disk_id={disk_id}")
    assert r.status_code == 200, r.text
    return r.json()


def same_everywhere(c, path, nodes=(1, 2, 3)):
    """A linearizable read answers the same on every node; returns that answer."""
    got = [c.get(i, path).json() for i in nodes]
    assert all(g == got[0] for g in got), got
    return got[0]


def space_stats(c, nodes=(1, 2, 3)):
    """space_stat of every node once they applied the leader's commit index."""
    lid = c.wait_leader()
    c.wait_applied(c.stat(lid)["raft_status"]["commit"], nodes=list(nodes))
    return [c.stat(i)["space_stat"] for i in nodes]


# ---- the routes one by one -------------------------------------------------------------------

def test_add_info_and_their_errors(cluster3):
    c = cluster3
    r = c.get(2, "/disk/info?disk_id=9999")
    assert err(r) == (911, {"error": "disk not found"})
    r = c.get(2, "/disk/info")
    assert r.status_code == 400 and r.json()["code"] == "Argument" and "disk_id" in r.json()["error"]
    assert c.get(1, "/disk/info?disk_id=x").json()["code"] == "Argument"
    assert c.get(1, "/disk/info?disk_id=4294967296").json()["code"] == "Argument"

    host = "http://127.0.0.1:8801"
    d1 = alloc(c, 2)
    body = disk(d1, host, "/data/d1")
    assert c.post(3, "/disk/add", body).status_code == 200  # through a follower
    want = dict(body, max_chunk_cnt=TIB // CS, free_chunk_cnt=TIB // CS)
    for i in (1, 2, 3):
        assert info(c, i, d1) == want
    # the reference's validation order: 201 for the id first, then 400s
    r = c.post(1, "/disk/add", dict(body, path="/elsewhere", cluster_id=7))
    assert err(r) == (201, {"error": "Data Already Exist"})
    d2 = alloc(c)
    illegal = (400, {"error": "Illegal Arguments"})
    assert err(c.post(1, "/disk/add", disk(d2, host, "/data/d1"))) == illegal  # host+path used
    assert err(c.post(1, "/disk/add", disk(d2, host, "/x", cluster_id=7))) == illegal
    assert err(c.post(1, "/disk/add", disk(d2, host, "/x", idc="z9"))) == illegal
    assert err(c.post(1, "/disk/add", disk(0, host, "/x"))) == illegal
    assert err(c.post(1, "/disk/add", disk(d2 + 1000, host, "/x"))) == illegal  # never allocated
    invalid = (912, {"error": "invalid status"})
    assert err(c.post(1, "/disk/add", disk(d2, host, "/x", status=0))) == invalid
    assert err(c.post(1, "/disk/add", disk(d2, host, "/x", status=6))) == invalid
    # host+path uniqueness has a separator: "...:88" + "01/a" is not "...:8801" + "/a"
    add(c, disk(d2, host, "/a"))
    add(c, disk(alloc(c), "http://127.0.0.1:88", "01/a"))
    # bad input: JSON, types, ranges, times, lengths
    for bad in ('{"disk_id":', "", "[1]", "disk_id=3"):
        r = c.post(1, "/disk/add", bad)
        assert r.status_code == 400 and r.json()["code"] == "Argument", (bad, r.text)
    d3 = alloc(c)
    for field, value in (("disk_id", "x"), ("disk_id", -1), ("disk_id", 4294967296),
                         ("size", -1), ("size", 2 ** 50 + 1), ("used_chunk_cnt", 2 ** 33),
                         ("free", "big"), ("readonly", "yes"), ("status", 256),
                         ("host", 5), ("create_time", "yesterday"),
                         ("last_update_time", "2022-03-24 17:33:45"), ("path", "p" * 2000),
                         ("cluster_id", 1.5)):
        r = c.post(1, "/disk/add", dict(disk(d3, host, "/d3"), **{field: value}))
        assert r.status_code == 400 and r.json()["code"] == "Argument", (field, r.text)
        assert field in r.json()["error"]
    assert c.get(1, f"/disk/info?disk_id={d3}").status_code == 911
    # a missing time reads as Go's zero time; host+path of a repaired or dropped add is not held
    add(c, {k: v for k, v in disk(d3, host, "/d3").items() if k != "create_time"})
    assert info(c, 2, d3)["create_time"] == "0001-01-01T00:00:00Z"


def test_status_lifecycle(cluster3):
    c = cluster3
    host = "http://127.0.0.1:8802"
    d = new_disk(c, host, "/life")
    assert err(c.post(1, "/disk/set", {"disk_id": 999999, "status": 2})) == \
        (911, {"error": "disk not found"})
    for bad in (0, 5, 6):  # dropped only through the drop workflow
        assert err(c.post(1, "/disk/set", {"disk_id": d, "status": bad})) == \
            (912, {"error": "invalid status"})
    assert c.post(1, "/disk/set", {"disk_id": d, "status": "2"}).json()["code"] == "Argument"
    back = (913, {"error": "not allow to change status back"})
    assert err(c.post(1, "/disk/set", {"disk_id": d, "status": 3})) == back  # skips broken
    assert c.post(2, "/disk/set", {"disk_id": d, "status": 1}).status_code == 200  # same: no-op
    for status in (2, 3, 4):
        assert c.post(3, "/disk/set", {"disk_id": d, "status": status}).status_code == 200
        assert all(info(c, i, d)["status"] == status for i in (1, 2, 3))
        assert d in [x["disk_id"] for x in
                     c.get(2, f"/disk/list?host={host}&status={status}").json()["disks"]]
        for older in range(1, status):
            assert err(c.post(1, "/disk/set", {"disk_id": d, "status": older})) == back
    # repaired: the disk keeps its record, its place is free for the replacement
    d2 = new_disk(c, host, "/life")
    assert info(c, 1, d2)["status"] == 1
    assert [x["disk_id"] for x in c.get(1, f"/disk/list?host={host}").json()["disks"]] == [d, d2]


def test_drop_workflow(cluster3):
    c = cluster3
    host = "http://127.0.0.1:8803"
    d, other = new_disk(c, host, "/drop"), new_disk(c, host, "/broken")
    assert err(c.post(1, "/disk/drop", {"disk_id": 999999})) == (911, {"error": "disk not found"})
    assert err(c.post(1, "/disk/dropped", {"disk_id": 999999}))[0] == 911
    c.post(1, "/disk/set", {"disk_id": other, "status": 2})
    abnormal = (926, {"error": "disk is abnormal or not readonly, can't add into dropping list"})
    assert err(c.post(2, "/disk/drop", {"disk_id": other})) == abnormal
    not_dropping = (913, {"error": "not allow to change status back"})
    assert err(c.post(1, "/disk/dropped", {"disk_id": d})) == not_dropping
    # since CubeFS v3.2 a disk is switched readonly before it can be dropped
    assert err(c.post(3, "/disk/drop", {"disk_id": d})) == abnormal
    assert c.post(1, "/disk/access", {"disk_id": d, "readonly": True}).status_code == 200
    assert c.post(3, "/disk/drop", {"disk_id": d}).status_code == 200
    # a dropping disk: its readonly flag is fixed (932), a status change is refused with 913
    # (v3.5.1; a current blobnode retries "set broken" until 200 or 913), an unchanged one is 200
    assert c.post(2, "/disk/access", {"disk_id": d, "readonly": True}).status_code == 200
    assert err(c.post(2, "/disk/access", {"disk_id": d, "readonly": False})) == \
        (932, {"error": "dropping disk not allow change state or set readonly"})
    assert err(c.post(1, "/disk/set", {"disk_id": d, "status": 2})) == not_dropping
    assert c.post(1, "/disk/drop", {"disk_id": d}).status_code == 200  # already dropping
    listed = same_everywhere(c, "/disk/droppinglist")
    assert [x["disk_id"] for x in listed["disks"]] == [d] and listed["marker"] == 0
    assert listed["disks"][0] == info(c, 1, d)
    # 930 (units left on the disk) is tested with volumes (test_volumes.py). Here the only units
    # can be those of a volume the leader tries to create on these fake blobnodes: it fails and
    # is aborted within milliseconds, after which /disk/dropped goes through
    end = time.time() + 10
    while (r := c.post(2, "/disk/dropped", {"disk_id": d})).status_code == 930 and \
            time.time() < end:
        time.sleep(0.05)
    assert r.status_code == 200, r.text
    assert c.post(1, "/disk/dropped", {"disk_id": d}).status_code == 200  # already dropped
    assert same_everywhere(c, "/disk/droppinglist") == {"disks": None, "marker": 0}
    assert info(c, 3, d)["status"] == 5
    assert err(c.post(1, "/disk/drop", {"disk_id": d}))[0] == 926
    assert err(c.post(1, "/disk/set", {"disk_id": d, "status": 4}))[0] == 913
    new_disk(c, host, "/drop")  # the place is free again
    for route in ("/disk/drop", "/disk/dropped"):
        assert c.post(1, route, '{"disk_id":"1"}').json()["code"] == "Argument"


def test_readonly_switch(cluster3):
    c = cluster3
    d = new_disk(c, "http://127.0.0.1:8804", "/ro")
    assert err(c.post(1, "/disk/access", {"disk_id": 999999, "readonly": True}))[0] == 911
    assert c.post(1, "/disk/access", {"disk_id": d, "readonly": "yes"}).json()["code"] == "Argument"
    assert c.post(2, "/disk/access", {"disk_id": d, "readonly": True}).status_code == 200
    assert all(info(c, i, d)["readonly"] is True for i in (1, 2, 3))
    assert c.post(1, "/disk/access", {"disk_id": d, "readonly": True}).status_code == 200
    hb = c.post(3, "/disk/heartbeat", {"disks": [{"disk_id": d, "size": TIB, "free": TIB}]})
    assert hb.json() == {"disks": [{"disk_id": d, "status": 1, "read_only": True}]}
    assert c.post(1, "/disk/access", {"disk_id": d, "readonly": False}).status_code == 200
    assert info(c, 2, d)["readonly"] is False


def test_heartbeat_batches_and_errors(cluster3):
    c = cluster3
    host = "http://127.0.0.1:8805"
    a, b = new_disk(c, host, "/hb1"), new_disk(c, host, "/hb2")
    before = info(c, 1, a)
    r = c.post(1, "/disk/heartbeat", {"disks": [{"disk_id": 4242, "size": 100, "free": 100}]})
    assert err(r) == (911, {"error": "disk not found"})
    # one unknown disk fails the whole batch and records nothing for the others
    r = c.post(2, "/disk/heartbeat", {"disks": [{"disk_id": a, "size": 5, "free": 5},
                                                {"disk_id": 4242}]})
    assert r.status_code == 911
    assert info(c, 3, a) == before
    assert c.post(1, "/disk/heartbeat", {"disks": []}).json() == {"disks": []}
    assert c.post(1, "/disk/heartbeat", {}).json() == {"disks": []}
    for bad in ({"disks": {}}, {"disks": [1]}, {"disks": [{"disk_id": a, "free": -1}]},
                {"disks": [{"disk_id": "a"}]}, {"disks": [{"disk_id": a, "max_chunk_cnt": "x"}]},
                {"disks": [{"disk_id": a, "size": 2 ** 62}]}):
        r = c.post(1, "/disk/heartbeat", bad)
        assert r.status_code == 400 and r.json()["code"] == "Argument", (bad, r.text)
    c.post(1, "/disk/set", {"disk_id": b, "status": 2})
    batch = {"disks": [
        {"disk_id": a, "used": 30 * CS, "free": 10 * CS + 5, "size": 100 * CS,
         "max_chunk_cnt": 1, "free_chunk_cnt": 1, "used_chunk_cnt": 20},
        {"disk_id": b, "used": 0, "free": 100 * CS, "size": 100 * CS, "used_chunk_cnt": 90}]}
    r = c.post(3, "/disk/heartbeat", batch)
    assert r.json() == {"disks": [{"disk_id": a, "status": 1, "read_only": False},
                                  {"disk_id": b, "status": 2, "read_only": False}]}
    # counters: max = size / chunk, free = min(max - used chunks, free / chunk), what was sent
    # for them is ignored
    for i in (1, 2, 3):
        x, y = info(c, i, a), info(c, i, b)
        assert (x["used"], x["free"], x["size"]) == (30 * CS, 10 * CS + 5, 100 * CS)
        assert (x["max_chunk_cnt"], x["free_chunk_cnt"], x["used_chunk_cnt"]) == (100, 10, 20)
        assert (y["max_chunk_cnt"], y["free_chunk_cnt"]) == (100, 10)


def test_admin_update_keeps_indexes(cluster3):
    c = cluster3
    host = "http://127.0.0.1:8806"
    d = new_disk(c, host, "/adm")
    assert err(c.post(1, "/admin/disk/update", disk(999999, host, "/x")))[0] == 911
    # any status without transition rules; the status index follows
    assert c.post(2, "/admin/disk/update", disk(d, host, "/adm", status=4)).status_code == 200
    assert [x["disk_id"] for x in c.get(1, f"/disk/list?host={host}&status=4").json()["disks"]] == [d]
    assert c.get(1, f"/disk/list?host={host}&status=1").json()["disks"] == []
    # repaired released host+path; a replacement takes it, and reviving d is refused
    d2 = new_disk(c, host, "/adm")
    assert err(c.post(1, "/admin/disk/update", disk(d, host, "/adm", status=1))) == \
        (400, {"error": "Illegal Arguments"})
    assert c.post(1, "/admin/disk/update", disk(d2, host, "/adm", status=5)).status_code == 200
    assert c.post(1, "/admin/disk/update", disk(d, host, "/adm", status=1)).status_code == 200
    assert [x["disk_id"] for x in c.get(3, f"/disk/list?host={host}&status=1").json()["disks"]] == [d]
    # chunk counts: only positive values are taken; status 0 leaves it alone
    assert c.post(1, "/admin/disk/update", disk(d, host, "/adm", status=0, max_chunk_cnt=7,
                                                free_chunk_cnt=3)).status_code == 200
    x = info(c, 2, d)
    assert (x["status"], x["max_chunk_cnt"], x["free_chunk_cnt"]) == (1, 7, 3)


# ---- listing -----------------------------------------------------------------------------------

def test_list_order_paging_and_filters(make_cluster):
    c = make_cluster(nodes=3, idc="z0,z1,z2")
    assert same_everywhere(c, "/disk/list?count=10") == {"disks": [], "marker": 0}
    ids = [alloc(c) for _ in range(36)]
    rnd = random.Random(5)
    order = ids[:]
    rnd.shuffle(order)  # registered out of id order
    want = {}
    for k, d in enumerate(order):
        host = f"http://10.0.0.{d % 5}:8899"
        body = disk(d, host, f"/p{d}", idc=f"z{d % 5 % 3}", rack=f"r{d % 2}")
        add(c, body, node=1 + k % 3)
        want[d] = body
    for d in ids[::4]:
        c.post(1, "/disk/set", {"disk_id": d, "status": 2})
        want[d]["status"] = 2

    def expect(**f):
        return sorted(d for d, b in want.items()
                      if all(b[k] == v for k, v in f.items()))

    cases = [({}, expect()), ({"status": 2}, expect(status=2)), ({"status": 1}, expect(status=1)),
             ({"status": 9}, expect()), ({"idc": "z1"}, expect(idc="z1")),
             ({"idc": "z1", "rack": "r0"}, expect(idc="z1", rack="r0")),
             ({"idc": "z2", "rack": "r1", "status": 2}, expect(idc="z2", rack="r1", status=2)),
             ({"host": "http://10.0.0.3:8899"}, expect(host="http://10.0.0.3:8899")),
             ({"host": "http://10.0.0.3:8899", "status": 1},
              expect(host="http://10.0.0.3:8899", status=1)),
             ({"host": "http://10.0.0.4:8899", "idc": "z1", "rack": "r1"},
              expect(host="http://10.0.0.4:8899", idc="z1", rack="r1")),
             ({"host": "nope"}, []), ({"idc": "z7"}, [])]
    for f, ids_want in cases:
        for count, node in ((4, 1), (7, 2), (200, 3)):
            got, marker = [], 0
            while True:
                q = "&".join([f"{k}={requests.utils.quote(str(v), safe='')}" for k, v in f.items()]
                             + [f"count={count}", f"marker={marker}"])
                page = c.get(node, f"/disk/list?{q}").json()
                if not page["disks"]:
                    assert page["marker"] == 0
                    break
                assert len(page["disks"]) <= count
                assert page["marker"] == page["disks"][-1]["disk_id"]
                got += [x["disk_id"] for x in page["disks"]]
                marker = page["marker"]
            assert got == ids_want, (f, count)
    page = same_everywhere(c, f"/disk/list?marker={ids[3]}&count=2")
    assert [x["disk_id"] for x in page["disks"]] == ids[4:6]
    assert page["disks"][0] == dict(want[ids[4]], max_chunk_cnt=TIB // CS, free_chunk_cnt=TIB // CS)
    # count 0 is 10, above 200 is 200
    assert len(c.get(1, "/disk/list?count=0").json()["disks"]) == 10
    assert len(c.get(1, "/disk/list").json()["disks"]) == 10
    assert len(c.get(1, "/disk/list?count=100000").json()["disks"]) == 36
    # bad paging and filter arguments
    illegal = (400, {"error": "Illegal Arguments"})
    # a marker that is no disk pages from the next id (access pages broken disks from marker=1
    # whether or not disk 1 exists; the 2022 reference said 400 here)
    page = c.get(1, f"/disk/list?marker={ids[3]}&count=2").json()
    assert c.get(1, "/disk/list?marker=999").json() == {"disks": [], "marker": 0}
    assert c.get(1, f"/disk/list?marker={ids[-1] + 100000}").json()["disks"] == []
    assert err(c.get(1, "/disk/list?rack=r0")) == illegal  # a rack needs its idc
    for q in ("marker=abc", "marker=-1", "count=-1", "count=x", "status=300", "marker=4294967296"):
        r = c.get(1, f"/disk/list?{q}")
        assert r.status_code == 400 and r.json()["code"] == "Argument", (q, r.text)


# ---- /stat -------------------------------------------------------------------------------------

def test_space_stat_exact_and_immediate(make_cluster):
    c = make_cluster(nodes=3)
    zero = {"total_space": 0, "free_space": 0, "readonly_space": 0, "used_space": 0,
            "writable_space": 0, "total_blob_node": 0, "total_disk": 0,
            "disk_stat_infos": [{"idc": "z0", "total": 0, "total_chunk": 0, "total_free_chunk": 0,
                                 "available": 0, "readonly": 0, "expired": 0, "broken": 0,
                                 "repairing": 0, "repaired": 0, "dropping": 0, "dropped": 0}]}
    assert all(s == zero for s in space_stats(c))
    # host A: two 1 TiB disks; host B: one 2 TiB disk with 100 chunks used
    a1 = new_disk(c, "http://a:1", "/1")
    a2 = new_disk(c, "http://a:1", "/2", free=TIB - 5 * CS - 1)
    b1 = new_disk(c, "http://b:1", "/1", size=2 * TIB, free=2 * TIB - 100 * CS,
                  used=100 * CS, used_chunk_cnt=100)
    chunks = TIB // CS  # 65536

    def expected(avail_disks, infos, ro_disks=()):
        # v3.5.1 accounting: readonly and dropping (normal) disks count in total_space, their
        # free bytes are readonly_space, and used = total - free - readonly
        total = sum(d["size"] for d in avail_disks + list(ro_disks))
        free = sum(d["free"] for d in avail_disks)
        ro = sum(d["free"] for d in ro_disks)
        hosts = {}
        for d in avail_disks:
            hosts[d["host"]] = hosts.get(d["host"], 0) + d["free"]
        m = sum(f // CS for f in hosts.values())
        # EC3P3 on one IDC: S = 6, N = 3, k = 6
        return {"total_space": total, "free_space": free, "readonly_space": ro,
                "used_space": total - free - ro,
                "writable_space": (m // 6) * 3 * CS, "total_blob_node": len(hosts),
                "total_disk": 3, "disk_stat_infos": [dict(zero["disk_stat_infos"][0], **infos)]}

    da = {"host": "http://a:1", "size": TIB, "free": TIB}
    da2 = {"host": "http://a:1", "size": TIB, "free": TIB - 5 * CS - 1}
    db = {"host": "http://b:1", "size": 2 * TIB, "free": 2 * TIB - 100 * CS}
    base = {"total": 3, "total_chunk": 4 * chunks, "total_free_chunk": 4 * chunks - 100}
    want = expected([da, da2, db], dict(base, available=3))
    for s in space_stats(c):
        assert s == want
    # right after each change, not after a refresh period
    c.post(1, "/disk/access", {"disk_id": a2, "readonly": True})
    want = expected([da, db], dict(base, available=2, readonly=1), [da2])
    assert all(s == want for s in space_stats(c))
    c.post(2, "/disk/set", {"disk_id": b1, "status": 2})
    want = expected([da], dict(base, available=1, readonly=1, broken=1), [da2])
    assert all(s == want for s in space_stats(c))
    assert c.post(1, "/disk/access", {"disk_id": a1, "readonly": True}).status_code == 200
    assert c.post(3, "/disk/drop", {"disk_id": a1}).status_code == 200
    want = expected([], dict(base, available=0, readonly=2, broken=1, dropping=1), [da2, da])
    assert all(s == want for s in space_stats(c))
    c.post(1, "/disk/access", {"disk_id": a2, "readonly": False})
    c.post(1, "/disk/heartbeat", {"disks": [{"disk_id": a2, "size": TIB, "free": 600 * CS,
                                             "used": TIB - 600 * CS, "used_chunk_cnt": 10}]})
    base2 = dict(base, total_free_chunk=chunks + 600 + 2 * chunks - 100)
    want = expected([dict(da2, free=600 * CS)],
                    dict(base2, available=1, readonly=1, broken=1, dropping=1), [da])
    assert want["writable_space"] == 100 * 3 * CS
    assert all(s == want for s in space_stats(c))


def test_heartbeat_expiry_in_stat(make_cluster):
    c = make_cluster(nodes=3, extra={"disk_mgr_config": {"heartbeat_expire_interval_s": 2}})
    a = new_disk(c, "http://a:1", "/1")
    b = new_disk(c, "http://b:1", "/1")
    assert all(s["disk_stat_infos"][0]["expired"] == 0 and s["total_blob_node"] == 2
               for s in space_stats(c))
    # keep a alive, let b lapse: every node sees it expire (the lease end was replicated)
    end = time.time() + 3.0
    while time.time() < end:
        assert c.post(1 + int(time.time() * 10) % 3, "/disk/heartbeat",
                      {"disks": [{"disk_id": a, "size": TIB, "free": TIB}]}).status_code == 200
        time.sleep(0.3)
    for s in space_stats(c):
        z = s["disk_stat_infos"][0]
        assert (z["available"], z["expired"]) == (2, 1)
        assert s["total_blob_node"] == 1
        assert s["total_space"] == 2 * TIB  # expired disks still count as space
        assert s["writable_space"] == (TIB // CS // 6) * 3 * CS
    first = info(c, 1, b)
    # a heartbeat brings it back at once
    c.post(2, "/disk/heartbeat", {"disks": [{"disk_id": b, "size": TIB, "free": TIB}]})
    for s in space_stats(c):
        assert s["disk_stat_infos"][0]["expired"] == 0 and s["total_blob_node"] == 2
    assert info(c, 3, b) == first  # the lease is not part of DiskInfo
    time.sleep(2.3)
    for s in space_stats(c):
        assert s["disk_stat_infos"][0]["expired"] == 2 and s["writable_space"] == 0


# ---- a leader change in the middle of a heartbeat stream ---------------------------------------

class Blobnode(threading.Thread):
    """Heartbeats a set of disks back to back, each round with a higher `used` value, through one
    node, and records the last value acknowledged for every disk."""

    def __init__(self, c, node, disks):
        super().__init__(daemon=True)
        self.c, self.node, self.disks = c, node, disks
        self.acked = {}
        self.sent = {d: set() for d in disks}
        self.ok = self.failed = 0
        self.stop = threading.Event()

    def run(self):
        s = requests.Session()
        k = 0
        while not self.stop.is_set():
            k += 1
            body = {"disks": [{"disk_id": d, "size": TIB, "used": k * CS, "free": TIB - k * CS,
                               "used_chunk_cnt": k} for d in self.disks]}
            for d in self.disks:
                self.sent[d].add(k)
            try:
                r = s.post(self.c.url(self.node, "/disk/heartbeat"), data=json.dumps(body),
                           timeout=15)
                if r.status_code == 200:
                    self.ok += 1
                    for d in self.disks:
                        self.acked[d] = k
                else:
                    self.failed += 1
                    time.sleep(0.05)
            except requests.RequestException:
                self.failed += 1
                time.sleep(0.05)


def test_leader_change_mid_heartbeat_stream_loses_nothing(make_cluster):
    c = make_cluster(nodes=3)
    disks = [new_disk(c, f"http://h{k // 4}:1", f"/d{k}") for k in range(24)]
    nodes = [Blobnode(c, 1 + k % 3, disks[k * 4:(k + 1) * 4]) for k in range(6)]
    for t in nodes:
        t.start()
    time.sleep(0.8)
    lid = c.wait_leader()
    target = next(i for i in (1, 2, 3) if i != lid)
    assert c.post(lid, "/leadership/transfer", {"peer_id": target}).status_code == 200
    time.sleep(0.8)
    lid = c.wait_leader()
    c.kill(lid, signal.SIGKILL)
    time.sleep(1.5)
    c.start(lid)
    time.sleep(1.0)
    for t in nodes:
        t.stop.set()
    for t in nodes:
        t.join()
    assert sum(t.ok for t in nodes) > 50
    lid = c.wait_leader()
    c.wait_applied(c.stat(lid)["raft_status"]["commit"])
    listing = same_everywhere(c, "/disk/list?count=200")["disks"]
    by_id = {x["disk_id"]: x for x in listing}
    for t in nodes:
        for d in t.disks:
            k = by_id[d]["used_chunk_cnt"]
            # the last acknowledged heartbeat (or a later one that was sent) is what is there
            assert k >= t.acked[d] and k in t.sent[d], (d, k, t.acked[d])
            assert by_id[d]["used"] == k * CS
    stats = space_stats(c)
    assert all(s == stats[0] for s in stats)


# ---- the simulated blobnode fleet --------------------------------------------------------------

class Sim:
    """A blobnode-sim process: H hosts x D disks on free loopback ports."""

    def __init__(self, c, hosts, disks, interval=0.3, base=None, extra=()):
        self.c, self.hosts, self.disks = c, hosts, disks
        self.base = base or pick_ports(hosts)
        self.log_path = os.path.join(c.dir, f"sim-{self.base}.log")
        self.args = [SIM, "--cm", ",".join(c.http(i) for i in range(1, c.n + 1)), "-H", str(hosts),
                     "-D", str(disks), "-p", str(self.base), "-i", str(interval),
                     "--timeout-ms", "5000", *extra]
        self.proc = None

    def start(self):
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.args, stdout=self.log, stderr=subprocess.STDOUT)
        return self

    def url(self, path, host=0):
        return f"http://127.0.0.1:{self.base + host}{path}"

    def stats(self):
        return requests.get(self.url("/sim/stats"), timeout=5).json()

    def sim_disks(self):
        return requests.get(self.url("/sim/disks"), timeout=5).json()["disks"]

    def wait(self, cond, timeout=20, what="condition"):
        end = time.time() + timeout
        while time.time() < end:
            try:
                if cond():
                    return
            except requests.RequestException:
                pass
            assert self.proc.poll() is None, self.tail()
            time.sleep(0.1)
        raise TimeoutError(f"{what}; sim log: {self.tail()}")

    def tail(self):
        with open(self.log_path, "rb") as f:
            return f.read()[-2000:].decode(errors="replace")

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(timeout=20)
        self.log.close()
        text = self.tail()
        assert not any(m in text for m in Cluster.SANITIZER_MARKS), text
        return rc


def test_blobnode_sim_end_to_end(make_cluster):
    # no idle-volume pool: this test counts the chunk calls it makes itself
    c = make_cluster(nodes=3, extra={"disk_mgr_config": {"heartbeat_expire_interval_s": 2},
                                     "volume_mgr_config": {"min_allocable_volume_count": 0}})
    sim = Sim(c, hosts=3, disks=4).start()
    try:
        sim.wait(lambda: sim.stats()["registered"] == 12, what="registration")
        sim.wait(lambda: sim.stats()["heartbeats"]["ok"] >= 6, what="heartbeats")
        for s in space_stats(c):
            z = s["disk_stat_infos"][0]
            assert (s["total_disk"], s["total_blob_node"], z["available"], z["expired"]) == \
                (12, 3, 12, 0)
            assert 0 < s["free_space"] < s["total_space"] == 12 * TIB
            assert s["writable_space"] > 0
        fleet = sim.sim_disks()
        assert sorted(d["disk_id"] for d in fleet) == list(range(1, 13))
        for d in fleet:  # registered as the sim describes them, every node agrees
            x = info(c, 1 + d["disk_id"] % 3, d["disk_id"])
            assert (x["host"], x["path"], x["idc"], x["rack"], x["status"]) == \
                (d["host"], d["path"], d["idc"], d["rack"], 1)
        listed = c.get(2, "/disk/list?host=" + requests.utils.quote(fleet[0]["host"], safe="")).json()
        assert [x["disk_id"] for x in listed["disks"]] == \
            [d["disk_id"] for d in fleet if d["host"] == fleet[0]["host"]]
        # numbers move with every heartbeat
        used = info(c, 1, 1)["used"]
        sim.wait(lambda: info(c, 1, 1)["used"] != used, what="changing numbers")

        # the chunk API clustermgr will call, served by the disk's own host
        d = fleet[5]
        chunk = f"/diskid/{d['disk_id']}/vuid/4294967297"
        r = requests.post(f"{d['host']}/chunk/create{chunk}?chunksize={CS}")
        assert r.status_code == 200
        st = requests.get(f"{d['host']}/chunk/stat{chunk}").json()
        assert (st["diskid"], st["vuid"], st["size"], st["status"]) == (d["disk_id"], 4294967297, CS, 1)
        assert requests.post(f"{d['host']}/chunk/readonly{chunk}").status_code == 200
        assert requests.get(f"{d['host']}/chunk/stat{chunk}").json()["status"] == 2
        assert requests.post(f"{d['host']}/chunk/readwrite{chunk}").status_code == 200
        other_host = next(x["host"] for x in fleet if x["host"] != d["host"])
        assert requests.get(f"{other_host}/chunk/stat{chunk}").status_code == 404
        chunks = requests.get(sim.url(f"/sim/chunks?diskid={d['disk_id']}")).json()["chunks"]
        assert [x["vuid"] for x in chunks] == [4294967297]
        sim.wait(lambda: info(c, 2, d["disk_id"])["used_chunk_cnt"] == 1, what="chunk count")
        assert requests.post(f"{d['host']}/chunk/release{chunk}?force=true").status_code == 200
        assert requests.get(f"{d['host']}/chunk/stat{chunk}").status_code == 404
        calls = sim.stats()["calls"]
        assert {k: calls[k] for k in ("create", "stat", "release", "readonly", "readwrite")} == \
            {"create": 1, "stat": 2, "release": 1, "readonly": 1, "readwrite": 1}
        assert calls["not_found"] == 2  # the wrong host, and the released chunk

        # knobs: refuse creation, answer slowly
        k = fleet[6]
        requests.post(sim.url(f"/sim/disk/{k['disk_id']}?refuse_create=1&delay_ms=300"))
        t0 = time.time()
        r = requests.post(f"{k['host']}/chunk/create/diskid/{k['disk_id']}/vuid/4311744513")
        assert r.status_code == 500 and time.time() - t0 >= 0.3
        assert sim.stats()["calls"]["create_refused"] == 1
        # broken: the blobnode reports it with /disk/set and stops heartbeating it
        b = fleet[0]
        requests.post(sim.url(f"/sim/disk/{b['disk_id']}?broken=1", host=2))
        sim.wait(lambda: all(info(c, i, b["disk_id"])["status"] == 2 for i in (1, 2, 3)),
                 what="broken disk")
        # silent: it expires on every node while the others stay alive
        q = fleet[11]
        requests.post(sim.url(f"/sim/disk/{q['disk_id']}?silent=1"))
        time.sleep(3.0)
        for s in space_stats(c):
            z = s["disk_stat_infos"][0]
            assert (z["available"], z["broken"], z["expired"]) == (11, 1, 1), s
        requests.post(sim.url(f"/sim/disk/{q['disk_id']}?silent=0"))
        sim.wait(lambda: all(s["disk_stat_infos"][0]["expired"] == 0 for s in space_stats(c)),
                 what="silent disk back")

        # failover: a clustermgr node goes away, every host keeps heartbeating through the others
        lid = c.wait_leader()
        follower = next(i for i in (1, 2, 3) if i != lid)
        c.kill(follower, signal.SIGKILL)
        ok = sim.stats()["heartbeats"]["ok"]
        sim.wait(lambda: sim.stats()["heartbeats"]["ok"] >= ok + 12, what="heartbeats after a kill")
        time.sleep(2.2)
        alive = [i for i in (1, 2, 3) if i != follower]
        for s in space_stats(c, nodes=alive):
            assert s["disk_stat_infos"][0]["expired"] == 0
        assert sim.stats()["failovers"] > 0
        c.start(follower)
        assert sim.stop() == 0
    finally:
        if sim.proc.poll() is None:
            sim.proc.kill()

    # a restarted fleet finds its disks registered and reuses them; the command-line knobs report
    # host 1's first disk broken and keep host 2's last disk silent from the start
    sim2 = Sim(c, hosts=3, disks=4, base=sim.base, extra=("--broken", "1.0", "--silent", "2.3"))
    sim2.start()
    try:
        sim2.wait(lambda: sim2.stats()["registered"] == 12, what="re-registration")
        st = sim2.stats()
        assert (st["registrations"]["reused"], st["registrations"]["adds"]) == (12, 0)
        sim2.wait(lambda: sim2.stats()["broken"] == 2, what="broken from the command line")
        assert info(c, 1, fleet[4]["disk_id"])["status"] == 2
        time.sleep(3.0)
        for s in space_stats(c):
            z = s["disk_stat_infos"][0]
            assert (s["total_disk"], z["broken"], z["available"], z["expired"]) == (12, 2, 10, 1)
        assert sim2.stop() == 0
    finally:
        if sim2.proc.poll() is None:
            sim2.proc.kill()


def test_blobnode_sim_help_and_bad_options():
    out = subprocess.run([SIM, "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "--interval" in out.stdout and "/sim/disk/" in out.stdout
    out = subprocess.run([SIM, "--hosts", "zero"], capture_output=True, text=True)
    assert out.returncode == 2 and "bad value" in out.stderr
    out = subprocess.run([SIM, "-H", "2", "--broken", "2.0", "--no-serve"], capture_output=True,
                         text=True, timeout=20)
    assert out.returncode == 2 and "no disk" in out.stderr
