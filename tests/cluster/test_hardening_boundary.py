"""The boundary around the core: which hosts the leader agrees to call, the console of a follower
with auth on, the dropping list of a fresh cluster, and writes that change nothing answered only
by a leader that a quorum still follows."""
import time

import pytest
import requests

SECRET = "hardening-boundary-secret"


def alloc(c, node=1):
    r = c.post(node, "/diskid/alloc", "null")
    assert r.status_code == 200, r.text
    return r.json()["disk_id"]


def disk(disk_id, host, path, node_id=0, status=1):
    return {"cluster_id": 1, "idc": "z0", "rack": "r0", "host": host, "path": path,
            "status": status, "readonly": False, "create_time": "2022-03-24T17:33:45Z",
            "last_update_time": "2022-03-24T17:33:45Z", "disk_id": disk_id, "used": 0,
            "free": 1 << 40, "size": 1 << 40, "max_chunk_cnt": 0, "free_chunk_cnt": 0,
            "used_chunk_cnt": 0, "disk_set_id": 0, "node_id": node_id}


def node(host):
    return {"cluster_id": 1, "idc": "z0", "rack": "r0", "host": host, "disk_type": "HDD",
            "role": "blobnode"}


def test_droppinglist_of_a_fresh_cluster(cluster3):
    """An empty dropping list is copied from no array at all (the sanitizer build aborted)."""
    for i in (1, 2, 3):
        r = cluster3.get(i, "/disk/droppinglist")
        assert r.status_code == 200, r.text
        assert r.json()["disks"] is None


BAD_HOSTS = [
    "gopher://127.0.0.1:18999/_SET%20pwned",
    "file:///etc/passwd",
    "dict://127.0.0.1:11211/",
    "ftp://127.0.0.1:21",
    "HTTP://127.0.0.1:80",
    "http://127.0.0.1",  # no port
    "http://127.0.0.1:0",
    "http://127.0.0.1:65536",
    "http://127.0.0.1:08080",
    "http://127.0.0.1:80/chunk",  # a path
    "http://127.0.0.1:80?x=1",
    "http://127.0.0.1:80#f",
    "http://user@127.0.0.1:80",
    "http://127.0.0.1:80 ",
    "http://256.0.0.1:80",
    "http://1.2.3:80",
    "http://[::1:80",
    "http://[zz::1]:80",
    "http://-a:80",
    "http://a_b:80",
    "http://a..b:80",
    "127.0.0.1:8080",
    "x",
]
ILLEGAL = (400, {"error": "Illegal Arguments"})
GOOD_HOSTS = ["http://127.0.0.1:8801", "http://a:1", "https://[::1]:9600", "http://10.0.0.3:8899/",
              "https://blobnode-3.example.com:65535"]


def test_disk_and_node_hosts_are_blobnode_addresses(cluster3):
    """The leader calls the host of every disk: only http(s)://ip-or-name:port is registered."""
    c = cluster3
    for host in BAD_HOSTS:
        r = c.post(2, "/disk/add", disk(alloc(c), host, "/bad"))
        assert (r.status_code, r.json()) == ILLEGAL, (host, r.text)
        r = c.post(3, "/node/add", node(host))
        assert (r.status_code, r.json()) == ILLEGAL, (host, r.text)
    # a disk without a node needs a host of its own
    r = c.post(1, "/disk/add", disk(alloc(c), "", "/nohost"))
    assert r.status_code == 400, r.text
    for k, host in enumerate(GOOD_HOSTS):
        d = alloc(c)
        r = c.post(1, "/disk/add", disk(d, host, f"/good{k}"))
        assert (r.status_code, r.text) == (200, ""), (host, r.text)
        assert c.get(2, f"/disk/info?disk_id={d}").json()["host"] == host
    nid = c.post(1, "/node/add", node("http://10.9.0.1:8899")).json()["node_id"]
    # a disk of a node takes the node's host and may leave its own empty
    d = alloc(c)
    r = c.post(2, "/disk/add", disk(d, "", "/of-node", node_id=nid))
    assert (r.status_code, r.text) == (200, ""), r.text
    assert c.get(1, f"/disk/info?disk_id={d}").json()["host"] == "http://10.9.0.1:8899"
    # /admin/disk/update does not change the host, but does not take a bad one either
    body = disk(d, "gopher://127.0.0.1:18999/_x", "/of-node")
    r = c.post(1, "/admin/disk/update", body)
    assert (r.status_code, r.json()) == ILLEGAL, r.text
    body["host"] = "http://10.9.0.1:8899"
    assert c.post(1, "/admin/disk/update", body).status_code == 200


@pytest.fixture(scope="module")
def auth_cluster():
    from cmcluster import Cluster
    c = Cluster(nodes=3, extra={"auth": {"enable_auth": True, "secret": SECRET}})
    c.start_all()
    yield c
    for i in c.procs:
        c.resume(i) if c.procs[i].poll() is None else None
    c.shutdown()
    reports = c.sanitizer_reports()
    assert not reports, "sanitizer reports:\n" + "\n".join(reports[:20])


def test_console_of_a_follower_with_auth(auth_cluster):
    """A follower's console includes the leader's /stat: its request is signed like a client's."""
    c = auth_cluster
    lid = c.wait_leader()
    follower = next(i for i in (1, 2, 3) if i != lid)
    data = c.get(follower, "/dashboard/data").json()
    assert "leader_error" not in data, data.get("leader_error")
    assert data["leader_stat"]["raft_status"]["raftState"] == "StateLeader"


def without_followers(c, lid, path, body):
    """POST to leader `lid` while both followers are stopped: ((status, text), seconds taken);
    status 0 when it did not answer within 8 s."""
    others = [i for i in (1, 2, 3) if i != lid]
    for i in others:
        c.pause(i)
    try:
        t0 = time.time()
        try:
            r = c.post(lid, path, body, timeout=8)
            return (r.status_code, r.text), time.time() - t0
        except requests.RequestException as e:
            return (0, str(e)), time.time() - t0
    finally:
        for i in others:
            c.resume(i)


def test_write_that_changes_nothing_waits_for_a_quorum(auth_cluster):
    """A leader that lost its followers cannot tell whether it was deposed: a write that would
    change nothing (the same status once more) is answered only after a barrier, like a read,
    and so not by a leader that a quorum no longer follows."""
    c = auth_cluster
    lid = c.wait_leader()
    d = alloc(c, lid)
    assert c.post(lid, "/disk/add", disk(d, "http://127.0.0.1:8801", "/noop")).status_code == 200
    assert c.post(lid, "/disk/set", {"disk_id": d, "status": 1}).status_code == 200
    answer, took = without_followers(c, lid, "/disk/set", {"disk_id": d, "status": 1})
    assert answer[0] != 200, f"answered without a quorum after {took:.2f}s"
    lid = c.wait_leader()
    assert c.post(lid, "/disk/set", {"disk_id": d, "status": 1}).status_code == 200
    follower = next(i for i in (1, 2, 3) if i != lid)
    assert c.post(follower, "/disk/set", {"disk_id": d, "status": 1}).status_code == 200


def test_service_heartbeat_not_found_waits_for_a_quorum(auth_cluster):
    """The not-found answer of /service/heartbeat comes from the leader's state: a leader that
    lost its followers (and so may be deposed, the node registered at a new leader) must not give
    it before a barrier."""
    c = auth_cluster
    lid = c.wait_leader()
    key = {"name": "ghost", "host": "http://10.9.9.9:9000"}
    assert c.post(lid, "/service/heartbeat", key).status_code == 404
    answer, took = without_followers(c, lid, "/service/heartbeat", key)
    assert answer[0] != 404, f"answered 404 without a quorum after {took:.2f}s"
    lid = c.wait_leader()
    assert c.post(lid, "/service/heartbeat", key).status_code == 404
