"""Nodes and copy sets of CubeFS v3.5.1+ (current-release.md §2.2, §2.3) over HTTP on real
clusters: /node/add with every check, /disk/add under a node, the compatible re-register, /node/drop,
/node/info, /topo/info equal on every node and after a restart and a snapshot install, and the
heartbeat filter of heartbeat_notify_interval_s."""
import time

from cmcluster import Cluster

HOST = "http://127.0.0.1:8899"


def node(host=HOST, idc="z0", rack="testrack", disk_type=1, role=1, **kw):
    # what a v3.5.3 blobnode sends (blobnode/startup.go registerNode)
    d = {"node_id": 0, "node_set_id": 0, "cluster_id": 1, "disk_type": disk_type, "idc": idc,
         "rack": rack, "host": host, "role": role, "status": 0}
    d.update(kw)
    return d


def add_node(c, body, via=1):
    r = c.post(via, "/node/add", body)
    assert r.status_code == 200, r.text
    return r.json()["node_id"]


def disk(disk_id, node_id, path, host="", idc="", rack="", size=1 << 40, **kw):
    d = {"cluster_id": 1, "idc": idc, "rack": rack, "host": host, "path": path, "status": 1,
         "readonly": False, "create_time": "2025-01-01T00:00:00Z",
         "last_update_time": "2025-01-01T00:00:00Z", "disk_set_id": 0, "node_id": node_id,
         "disk_id": disk_id, "used": 0, "free": size, "size": size, "max_chunk_cnt": 0,
         "free_chunk_cnt": 0, "used_chunk_cnt": 0}
    d.update(kw)
    return d


def alloc(c, via=1):
    # a v3.3+ client sends no body at all
    r = c.post(via, "/diskid/alloc", None, headers={"Content-Length": "0"})
    assert r.status_code == 200, r.text
    return r.json()["disk_id"]


def add_disk(c, node_id, path, via=1, **kw):
    d = alloc(c, via)
    r = c.post(via, "/disk/add", disk(d, node_id, path, **kw))
    assert (r.status_code, r.text) == (200, ""), r.text
    return d


def err(r):
    return r.status_code, r.json()


def topo_everywhere(c, nodes=(1, 2, 3)):
    got = [c.get(i, "/topo/info").json() for i in nodes]
    assert all(g == got[0] for g in got), got
    return got[0]


def test_node_add_checks_and_idempotency(cluster3):
    c = cluster3
    empty = c.get(2, "/topo/info").json()
    if not empty["all_node_sets"]["blobnode"]:  # first test on this cluster
        assert empty == {"cur_node_set_ids": {"blobnode": 1}, "cur_disk_set_ids": {"blobnode": 1},
                         "all_node_sets": {"blobnode": {}}}
    illegal = (400, {"error": "Illegal Arguments"})
    assert err(c.post(1, "/node/add", node(cluster_id=2))) == illegal
    assert err(c.post(1, "/node/add", node(idc="nowhere"))) == illegal
    body = node()
    del body["disk_type"]
    assert err(c.post(1, "/node/add", body)) == illegal  # absent: validation refuses it
    for bad in (0, 4, "floppy", 1.5, True):  # present but invalid: a decode error
        r = c.post(1, "/node/add", node(disk_type=bad))
        assert r.status_code == 400 and r.json()["code"] == "Argument", (bad, r.text)
    assert err(c.post(1, "/node/add", node(role=2))) == illegal  # shardnodes: not in G2
    assert c.post(1, "/node/add", node(role="ShardNode")).status_code == 400
    assert err(c.post(1, "/node/add", node(node_set_id=1))) == illegal  # the EC set
    assert err(c.post(1, "/node/add", node(node_set_id=10 ** 6))) == illegal

    # names are accepted for the enumerations, through a follower too
    n1 = add_node(c, node(host="http://10.1.0.1:8899", disk_type="HDD", role="blobnode"), via=3)
    info = c.get(2, f"/node/info?node_id={n1}").json()
    assert info == {"node_id": n1, "node_set_id": info["node_set_id"], "cluster_id": 1,
                    "disk_type": 1, "idc": "z0", "rack": "testrack",
                    "host": "http://10.1.0.1:8899", "role": 1, "status": 1}
    assert info["node_set_id"] >= 2
    # idempotent by host + disk type: the same id and nothing changed
    again = add_node(c, node(host="http://10.1.0.1:8899", rack="moved", idc="z0"), via=2)
    assert again == n1
    assert c.get(1, f"/node/info?node_id={n1}").json() == info
    # another disk type on that host is another node, in a node set of its own type
    ssd = add_node(c, node(host="http://10.1.0.1:8899", disk_type=2))
    assert ssd != n1
    ssd_set = c.get(1, f"/node/info?node_id={ssd}").json()["node_set_id"]
    assert ssd_set != info["node_set_id"]
    # a node set named by the caller must exist for its disk type (936)
    assert err(c.post(1, "/node/add", node(host="http://10.1.0.2:1", node_set_id=ssd_set))) == \
        (936, {"error": "nodeset not found"})
    n2 = add_node(c, node(host="http://10.1.0.2:1", node_set_id=info["node_set_id"]))
    assert c.get(3, f"/node/info?node_id={n2}").json()["node_set_id"] == info["node_set_id"]
    # /node/info
    assert err(c.get(1, "/node/info?node_id=999999")) == (934, {"error": "node not found"})
    r = c.get(1, "/node/info")
    assert r.status_code == 400 and r.json()["code"] == "Argument"
    topo = topo_everywhere(c)
    hdd = topo["all_node_sets"]["blobnode"]["hdd"][str(info["node_set_id"])]
    assert n1 in hdd["nodes"] and n2 in hdd["nodes"] and hdd["number"] == len(hdd["nodes"])
    assert str(ssd_set) in topo["all_node_sets"]["blobnode"]["ssd"]


def test_disks_under_a_node(cluster3):
    c = cluster3
    n = add_node(c, node(host="http://10.2.0.1:8899", idc="z0", rack="rk"))
    # a disk under a node takes the node's idc, rack and host, whatever it sent
    d1 = add_disk(c, n, "/data/1", host="http://elsewhere:1", idc="", rack="")
    got = c.get(2, f"/disk/info?disk_id={d1}").json()
    assert (got["host"], got["idc"], got["rack"], got["node_id"]) == \
        ("http://10.2.0.1:8899", "z0", "rk", n)
    assert got["disk_set_id"] >= 2
    assert d1 in [x["disk_id"] for x in c.get(3, "/disk/list?host=http://10.2.0.1:8899")
                  .json()["disks"]]
    # checks: unknown node 934, a node id above the scope is 934 too (no such node), the
    # node's host + path once, an existing disk id 201
    r = c.post(1, "/disk/add", disk(alloc(c), 999999, "/x"))
    assert err(r) == (934, {"error": "node not found"})
    assert err(c.post(1, "/disk/add", disk(alloc(c), n, "/data/1"))) == \
        (400, {"error": "Illegal Arguments"})
    assert c.post(1, "/disk/add", disk(d1, n, "/data/9")).status_code == 201
    # disks without a node still register (blobnodes of CubeFS 3.5.0 and older)
    legacy = alloc(c)
    r = c.post(2, "/disk/add", disk(legacy, 0, "/old", host="http://10.2.0.9:1", idc="z0",
                                    rack="r"))
    assert r.status_code == 200, r.text
    got = c.get(1, f"/disk/info?disk_id={legacy}").json()
    assert (got["node_id"], got["disk_set_id"]) == (0, 0)
    # ... with their idc still checked
    r = c.post(2, "/disk/add", disk(alloc(c), 0, "/old2", host="http://10.2.0.9:1", idc="zz"))
    assert err(r) == (400, {"error": "Illegal Arguments"})
    # the compatible re-register: the blobnode is upgraded, registers its node and adds its old
    # disk again with the node id (re_add_disk)
    n9 = add_node(c, node(host="http://10.2.0.9:1", idc="z0", rack="r"))
    r = c.post(3, "/disk/add", disk(legacy, n9, "/old"))
    assert r.status_code == 200, r.text
    got = c.get(1, f"/disk/info?disk_id={legacy}").json()
    assert got["node_id"] == n9 and got["disk_set_id"] >= 2
    assert c.post(3, "/disk/add", disk(legacy, n9, "/old")).status_code == 201  # once only
    for i in (1, 2, 3):
        assert c.get(i, f"/disk/info?disk_id={legacy}").json() == got
    # dropping: the disk leaves its disk set in /topo/info, keeps its disk_set_id
    topo = topo_everywhere(c)
    ns = str(c.get(1, f"/node/info?node_id={n}").json()["node_set_id"])
    members = topo["all_node_sets"]["blobnode"]["hdd"][ns]["disk_sets"][str(got_set(c, d1))]
    assert d1 in members
    assert c.post(1, "/disk/access", {"disk_id": d1, "readonly": True}).status_code == 200
    assert c.post(2, "/disk/drop", {"disk_id": d1}).status_code == 200
    topo = topo_everywhere(c)
    members = topo["all_node_sets"]["blobnode"]["hdd"][ns]["disk_sets"][str(got_set(c, d1))]
    assert d1 not in members
    assert got_set(c, d1) >= 2


def got_set(c, disk_id):
    return c.get(1, f"/disk/info?disk_id={disk_id}").json()["disk_set_id"]


def test_node_drop(cluster3):
    c = cluster3
    n = add_node(c, node(host="http://10.3.0.1:8899"))
    d = add_disk(c, n, "/d")
    assert err(c.post(1, "/node/drop", {"node_id": 999999})) == (934, {"error": "node not found"})
    assert err(c.post(2, "/node/drop", {"node_id": n})) == (935, {"error": "some disks are in use"})
    assert c.post(1, "/disk/access", {"disk_id": d, "readonly": True}).status_code == 200
    assert c.post(1, "/disk/drop", {"disk_id": d}).status_code == 200
    assert err(c.post(2, "/node/drop", {"node_id": n}))[0] == 935  # dropping is in use
    end = time.time() + 10
    while (r := c.post(2, "/disk/dropped", {"disk_id": d})).status_code == 930 and \
            time.time() < end:
        time.sleep(0.05)
    assert r.status_code == 200, r.text
    assert c.post(3, "/node/drop", {"node_id": n}).status_code == 200
    assert c.post(1, "/node/drop", {"node_id": n}).status_code == 200  # already dropped
    for i in (1, 2, 3):
        assert c.get(i, f"/node/info?node_id={n}").json()["status"] == 2
    ns = str(c.get(1, f"/node/info?node_id={n}").json()["node_set_id"])
    assert n not in topo_everywhere(c)["all_node_sets"]["blobnode"]["hdd"][ns]["nodes"]
    # the host gets the dropped node's id back (as the reference), and cannot add disks to it
    assert add_node(c, node(host="http://10.3.0.1:8899")) == n
    assert err(c.post(1, "/disk/add", disk(alloc(c), n, "/d2")))[0] == 934
    r = c.post(1, "/node/drop", {})
    assert r.status_code == 400 and r.json()["code"] == "Argument"


def test_stat_counts_nodes_and_set_members(make_cluster):
    c = make_cluster(nodes=1)
    n1 = add_node(c, node(host="http://10.4.0.1:1"))
    n2 = add_node(c, node(host="http://10.4.0.2:1"))
    d = [add_disk(c, n1, "/a"), add_disk(c, n1, "/b"), add_disk(c, n2, "/a")]
    legacy = alloc(c)
    assert c.post(1, "/disk/add", disk(legacy, 0, "/x", host="http://10.4.0.9:1", idc="z0")) \
        .status_code == 200
    s = c.stat(1)["space_stat"]
    # v3.5.1: once nodes exist, live nodes and disks in disk sets
    assert (s["total_blob_node"], s["total_disk"]) == (2, 3)
    assert s["readonly_space"] == 0
    c.post(1, "/disk/access", {"disk_id": d[0], "readonly": True})
    s = c.stat(1)["space_stat"]
    assert s["readonly_space"] == 1 << 40 and s["total_space"] == 4 << 40
    assert s["free_space"] == 3 << 40 and s["used_space"] == 0
    c.post(1, "/disk/drop", {"disk_id": d[0]})
    assert c.stat(1)["space_stat"]["total_disk"] == 2


def test_topology_same_after_restart_and_snapshot_install(make_cluster):
    c = make_cluster(nodes=3, snapshot_threshold=32, idc="z0,z1,z2",
                     extra={"disk_mgr_config": {"rack_aware": True, "copy_set_configs": {
                                "blobnode": {"hdd": {"node_set_cap": 4, "node_set_rack_cap": 1,
                                                     "disk_set_cap": 6,
                                                     "disk_count_per_node_in_disk_set": 2}}}}})
    nodes = []
    for k in range(10):
        nodes.append(add_node(c, node(host=f"http://10.5.0.{k}:1", idc=f"z{k % 3}",
                                      rack=f"r{k % 3}"), via=1 + k % 3))
    disks = [add_disk(c, nodes[k % 10], f"/d{k}", via=1 + k % 3) for k in range(40)]
    for d in disks[::7]:
        c.post(1, "/disk/access", {"disk_id": d, "readonly": True})
        c.post(2, "/disk/drop", {"disk_id": d})
    want = topo_everywhere(c)
    sets = want["all_node_sets"]["blobnode"]["hdd"]
    assert len(sets) >= 3  # the caps split nodes and disks over several sets
    for s in sets.values():
        assert s["number"] <= 4
        assert all(len(m) <= 6 for m in s["disk_sets"].values())
    # kill -9 and restart every node: the same answer
    for i in (1, 2, 3):
        c.kill(i)
    for i in (1, 2, 3):
        c.start(i, wait=False)
    c.wait_leader()
    for i in (1, 2, 3):
        c.wait_http(i)
    assert topo_everywhere(c) == want
    # a node wiped and re-added catches up from a snapshot: the same answer, and the next
    # assignments agree with the others
    lid = c.wait_leader()
    victim = next(i for i in (1, 2, 3) if i != lid)
    c.wipe_and_readd(victim, lid)
    end = time.time() + 20
    while time.time() < end and c.get(victim, "/topo/info").json() != want:
        time.sleep(0.1)
    assert c.get(victim, "/topo/info").json() == want
    assert "restor" in c.log_text(victim)
    more = add_node(c, node(host="http://10.5.1.1:1", idc="z1", rack="r9"))
    for k in range(6):
        add_disk(c, more, f"/n{k}", via=victim)
    topo_everywhere(c)


def test_heartbeats_more_frequent_than_the_notify_interval_are_not_proposed(make_cluster):
    c = make_cluster(nodes=3, extra={"heartbeat_notify_interval_s": 2})
    n = add_node(c, node(host="http://10.6.0.1:1"))
    d = add_disk(c, n, "/hb")
    lid = c.wait_leader()
    before = c.stat(lid)["raft_status"]["commit"]
    for k in range(20):
        r = c.post(1 + k % 3, "/disk/heartbeat",
                   {"disks": [{"disk_id": d, "size": 1 << 40, "free": (1 << 40) - k}]})
        assert r.json() == {"disks": [{"disk_id": d, "status": 1, "read_only": False}]}
    # answered every time, proposed none (the add's lease is younger than 2 s)
    assert c.stat(lid)["raft_status"]["commit"] - before < 3
    assert c.get(1, f"/disk/info?disk_id={d}").json()["free"] == 1 << 40
    time.sleep(2.1)
    c.post(2, "/disk/heartbeat", {"disks": [{"disk_id": d, "size": 1 << 40, "free": 12345}]})
    for i in (1, 2, 3):
        assert c.get(i, f"/disk/info?disk_id={d}").json()["free"] == 12345
