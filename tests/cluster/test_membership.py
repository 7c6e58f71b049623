"""Membership: add a learner, promote it, transfer leadership, remove members."""
import time



def peers_of(c, lid):
    return {p["id"]: p for p in c.stat(lid)["raft_status"]["peers"]}


def wait_for(pred, timeout=15, what="condition"):
    end = time.time() + timeout
    while time.time() < end:
        v = pred()
        if v:
            return v
        time.sleep(0.05)
    raise TimeoutError(what)


def test_learner_add_promote_remove(make_cluster):
    c = make_cluster(nodes=3, max_nodes=4)
    lid = c.wait_leader()
    assert c.post(1, "/config/set", {"key": "before_join", "value": "1"}).status_code == 200
    c.start(4)  # not in peers: starts empty and waits to be added
    r = c.get(4, "/config/get?key=before_join")
    assert r.status_code == 907  # it knows no leader yet

    follower = next(i for i in (1, 2, 3) if i != lid)
    body = {"peer_id": 4, "host": c.raft_addr(4), "member_type": 1, "node_host": c.http(4)}
    r = c.post(follower, "/member/add", body)  # forwarded to the leader
    assert r.status_code == 200, r.text
    p = peers_of(c, lid)
    assert set(p) == {1, 2, 3, 4} and p[4]["isLearner"] is True and p[4]["host"] == c.raft_addr(4)
    # the learner catches up and serves reads (linearizable through the leader)
    wait_for(lambda: c.get(4, "/config/get?key=before_join").status_code == 200, what="learner read")
    assert c.get(4, "/config/get?key=before_join").json() == "1"
    assert c.post(4, "/config/set", {"key": "via_learner", "value": "2"}).status_code == 200
    assert c.get(1, "/config/get?key=via_learner").json() == "2"
    # adding it again is a duplicate
    r = c.post(lid, "/member/add", body)
    assert (r.status_code, r.json()) == (910, {"error": "duplicated member info"})
    r = c.post(lid, "/member/add", {"peer_id": 9, "host": c.raft_addr(4), "member_type": 2})
    assert r.status_code == 910

    # promote: now a voter
    r = c.post(lid, "/member/promote", {"peer_id": 4})
    assert r.status_code == 200, r.text
    assert peers_of(c, lid)[4]["isLearner"] is False
    assert c.post(lid, "/member/promote", {"peer_id": 4}).status_code == 200  # idempotent
    assert c.post(lid, "/member/promote", {"peer_id": 77}).status_code == 400

    # leadership can move to the new voter, and it knows everyone's HTTP address
    c.transfer(4)
    assert c.stat(1)["leader_host"] == c.http(4)
    assert c.post(1, "/config/set", {"key": "lead4", "value": "x"}).status_code == 200
    assert c.get(2, "/config/get?key=lead4").json() == "x"

    # the leader cannot be removed; move leadership away, then remove node 4
    r = c.post(1, "/member/remove", {"peer_id": 4})
    assert (r.status_code, r.json()) == (400, {"error": "Request Not Allow"})
    c.transfer(1, via=4, among=(1, 2, 3))
    r = c.post(2, "/member/remove", {"peer_id": 4})
    assert r.status_code == 200, r.text
    assert set(peers_of(c, 1)) == {1, 2, 3}
    # the removed node notices and stops serving
    wait_for(lambda: c.get(4, "/config/get?key=lead4").status_code == 503, what="removed node refuses")
    assert "removed" in c.get(4, "/config/get?key=lead4").json()["error"]
    assert c.get(4, "/readyz").status_code == 503
    r = c.post(1, "/member/remove", {"peer_id": 4})
    assert (r.status_code, r.json()) == (400, {"error": "Illegal Arguments"})
    # the cluster still works with three voters
    assert c.post(3, "/config/set", {"key": "after_remove", "value": "y"}).status_code == 200


def test_membership_argument_errors(cluster3):
    c = cluster3
    lid = c.wait_leader()
    r = c.post(lid, "/member/add", {"peer_id": 9, "host": "127.0.0.1:10119", "member_type": 7})
    assert (r.status_code, r.json()) == (400, {"error": "Illegal Arguments"})
    r = c.post(lid, "/member/add", {"peer_id": 9, "host": "nohost", "member_type": 1})
    assert r.status_code == 400 and r.json()["code"] == "Argument"
    r = c.post(lid, "/member/add", {"peer_id": 9, "member_type": 1})
    assert r.status_code == 400 and "host" in r.json()["error"]
    r = c.post(lid, "/member/remove", {"peer_id": 99})
    assert (r.status_code, r.json()) == (400, {"error": "Illegal Arguments"})
    r = c.post(lid, "/member/remove", {"peer_id": lid})
    assert (r.status_code, r.json()) == (400, {"error": "Request Not Allow"})
    r = c.post(lid, "/leadership/transfer", {"peer_id": 99})
    assert (r.status_code, r.json()) == (400, {"error": "Illegal Arguments"})
    r = c.post(lid, "/member/add", {"peer_id": lid, "host": c.raft_addr(lid), "member_type": 2})
    assert (r.status_code, r.json()) == (910, {"error": "duplicated member info"})


def test_leadership_transfer_round_trip(cluster3):
    c = cluster3
    lid = c.wait_leader()
    target = next(i for i in (1, 2, 3) if i != lid)
    t0 = time.time()
    c.transfer(target)
    assert time.time() - t0 < 5
    # back, through a follower (forwarded to the leader)
    other = next(i for i in (1, 2, 3) if i != target)
    c.transfer(lid, via=other)
    assert c.post(target, "/config/set", {"key": "after_transfer", "value": "1"}).status_code == 200
