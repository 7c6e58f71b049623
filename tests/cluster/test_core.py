"""Bootstrap, /stat on every node, config and task switches, forwarding and linearizable reads."""
import json
import threading

import requests

SWITCHES = ["disk_repair", "balance", "disk_drop", "blob_delete", "shard_repair", "vol_inspect"]


def test_bootstrap_elects_one_leader(cluster3):
    c = cluster3
    lid = c.wait_leader()
    assert lid in (1, 2, 3)
    for i in (1, 2, 3):
        st = c.stat(i)
        rs = st["raft_status"]
        assert rs["leader"] == lid
        assert rs["nodeId"] == i
        assert st["leader_host"] == c.http(lid)
        assert rs["commit"] >= 1 and rs["applied"] <= rs["commit"]
        if i == lid:
            assert rs["raftState"] == "StateLeader"
            peers = {p["id"]: p for p in rs["peers"]}
            assert set(peers) == {1, 2, 3}
            for pid, p in peers.items():
                assert p["host"] == c.raft_addr(pid)
                assert p["state"] in ("ProgressStateReplicate", "ProgressStateProbe")
                assert p["isLearner"] is False
                assert set(p) == {"id", "host", "match", "next", "state", "paused",
                                  "pendingSnapshot", "active", "isLearner", "isInflightFull",
                                  "inflightCount"}
        else:
            assert rs["raftState"] == "StateFollower"
            assert rs["peers"] is None


def test_stat_shape_matches_reference(cluster3):
    st = cluster3.stat(1)
    # the reference's keys (read_only since CubeFS v3.2), then our cluster versions
    assert list(st) == ["leader_host", "read_only", "raft_status", "space_stat", "volume_stat",
                        "cluster_version", "member_versions"]
    assert list(st["raft_status"])[:9] == ["nodeId", "term", "vote", "commit", "leader",
                                           "raftState", "applied", "raftApplied", "transferee"]
    ss = st["space_stat"]
    assert list(ss) == ["total_space", "free_space", "readonly_space", "used_space",
                        "writable_space", "total_blob_node", "total_disk", "disk_stat_infos"]
    assert [d["idc"] for d in ss["disk_stat_infos"]] == ["z0"]
    assert list(st["volume_stat"]) == ["total_volume", "idle_volume", "can_alloc_volume",
                                       "active_volume", "lock_volume", "unlocking_volume"]


def test_replication_progress_is_live(cluster3):
    c = cluster3
    lid = c.wait_leader()
    before = c.stat(lid)["raft_status"]["commit"]
    for k in range(5):
        assert c.post(1, "/config/set", {"key": f"progress{k}", "value": "x"}).status_code == 200
    rs = c.stat(lid)["raft_status"]
    assert rs["commit"] >= before + 5
    for p in rs["peers"]:
        assert p["match"] <= rs["commit"] + 1 and p["next"] > 0


def test_task_switches_exist_with_defaults(cluster3):
    c = cluster3
    for i in (1, 2, 3):
        for s in SWITCHES:
            r = c.get(i, f"/config/get?key={s}")
            assert r.status_code == 200, r.text
            assert r.json() in ("Disable", "Enable")
            assert r.headers["Content-Type"] == "application/json"


def test_switch_toggle_through_follower_visible_everywhere(cluster3):
    c = cluster3
    lid = c.wait_leader()
    follower = next(i for i in (1, 2, 3) if i != lid)
    r = c.post(follower, "/config/set", {"key": "balance", "value": "Enable"})
    assert r.status_code == 200 and r.content == b""
    # linearizable reads: visible on every node immediately after the write returned
    for i in (1, 2, 3):
        assert c.get(i, "/config/get?key=balance").json() == "Enable"
    assert c.post(follower, "/config/set", {"key": "balance", "value": "Disable"}).status_code == 200
    for i in (1, 2, 3):
        assert c.get(i, "/config/get?key=balance").json() == "Disable"


def test_config_set_get_delete_list(cluster3):
    c = cluster3
    assert c.post(2, "/config/set", {"key": "demo_k", "value": "v1"}).status_code == 200
    assert c.get(3, "/config/get?key=demo_k").json() == "v1"
    lst = c.get(1, "/config/list").json()["configs"]
    assert lst["demo_k"] == "v1"
    assert lst["volume_chunk_size"] == "16777216"
    assert lst["volume_reserve_size"] == "10485760"
    assert json.loads(lst["code_mode"])[0]["mode_name"] == "EC3P3"
    assert list(lst) == sorted(lst)
    r = c.post(3, "/config/delete?key=demo_k")
    assert r.status_code == 200 and r.content == b""
    r = c.get(1, "/config/get?key=demo_k")
    assert r.status_code == 404 and r.json() == {"error": "Not Found"}
    assert c.post(1, "/config/delete?key=never_there").status_code == 200
    r = c.get(1, "/config/get?key=nonexistent")
    assert r.status_code == 404


def test_config_errors_match_reference(cluster3):
    c = cluster3
    r = c.post(1, "/config/set", {"key": "code_mode", "value": "x"})
    assert (r.status_code, r.json()) == (400, {"error": "Illegal Arguments"})
    r = c.post(1, "/config/set", '{"key":')
    assert (r.status_code, r.json()) == (400, {"error": "unexpected end of JSON input", "code": "Argument"})
    r = c.post(1, "/config/set")
    assert (r.status_code, r.json()) == (400, {"error": "unexpected end of JSON input", "code": "Argument"})
    r = c.post(1, "/config/set", "key=a&value=b",
               headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 400 and r.json()["code"] == "Argument"
    r = c.post(1, "/config/set", {"key": "n", "value": 123})
    assert r.status_code == 400 and r.json()["code"] == "Argument" and "value" in r.json()["error"]
    r = c.get(1, "/config/get")
    assert r.status_code == 400 and r.json()["code"] == "Argument" and "key" in r.json()["error"]
    r = c.get(1, "/config/get?key=")  # empty counts as missing
    assert r.status_code == 400


def test_stale_reads_answer_locally(cluster3):
    c = cluster3
    assert c.post(1, "/config/set", {"key": "stale_k", "value": "s"}).status_code == 200
    c.wait_applied(c.stat(c.wait_leader())["raft_status"]["commit"])
    for i in (1, 2, 3):
        assert c.get(i, "/config/get?key=stale_k&stale=true").json() == "s"
        assert c.get(i, "/config/get?key=stale_k", headers={"X-Clustermgr-Stale": "1"}).json() == "s"


def test_concurrent_writers_through_every_node(cluster3):
    c = cluster3
    errors = []

    def writer(node, n):
        s = requests.Session()
        for k in range(n):
            r = s.post(c.url(node, "/config/set"), data=json.dumps({"key": f"cw-{node}-{k}", "value": str(k)}), timeout=15)
            if r.status_code != 200:
                errors.append((node, k, r.status_code, r.text))

    threads = [threading.Thread(target=writer, args=(i, 60)) for i in (1, 2, 3) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    lst = [c.get(i, "/config/list").json()["configs"] for i in (1, 2, 3)]
    for node in (1, 2, 3):
        for k in range(60):
            for i in range(3):
                assert lst[i][f"cw-{node}-{k}"] == str(k)


def test_health_endpoints(cluster3):
    c = cluster3
    for i in (1, 2, 3):
        assert c.get(i, "/livez").json() == {"status": "ok"}
        r = c.get(i, "/readyz")
        assert r.status_code == 200 and r.json()["ready"] is True
