"""Bugs the chaos campaigns found, each reproduced on purpose with the fault that exposed it."""
import base64
import json
import os
import shutil
import sys
import threading
import time

import pytest
import requests

sys.path.insert(0, os.path.dirname(__file__))
import chaos  # noqa: E402


@pytest.fixture
def cc(tmp_path):
    c = chaos.ChaosCluster(str(tmp_path), 3)
    c.start_all()
    yield c
    c.shutdown()
    assert not c.c.sanitizer_reports(), c.c.sanitizer_reports()[:5]


def test_deposed_leader_survives_its_overwritten_proposals(cc):
    """A leader that cannot send keeps appending writes nobody else sees; the new leader
    overwrites them. When the old leader applied the new entries at those indices it freed each
    lost proposal twice (double free: abort)."""
    old = cc.wait_leader(20)
    assert old
    for o in range(1, 4):
        if o != old:
            cc.net.set(old, o, "drop")
    answers = []

    def writer(k):
        try:
            r = requests.post(cc.url(old, "/kv/set"), timeout=10, data=json.dumps(
                {"key": f"lost{k}", "value": base64.b64encode(b"x").decode()}))
            answers.append(r.status_code)
        except requests.RequestException as e:
            answers.append(type(e).__name__)

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(20)]
    for t in threads:
        t.start()
        time.sleep(0.02)
    # the others elect a leader, whose heartbeats reach the old one (only its sending is cut)
    end = time.time() + 20
    new = 0
    while time.time() < end and not new:
        for i in range(1, 4):
            if i != old and cc.stat(i)["raftState"] == "StateLeader":
                new = i
        time.sleep(0.1)
    assert new, "no new leader"
    # the new leader commits entries at the indices of the lost proposals
    for k in range(20):
        assert requests.post(cc.url(new, "/kv/set"), timeout=10, data=json.dumps(
            {"key": f"kept{k}", "value": base64.b64encode(b"y").decode()})).status_code == 200
    for t in threads:
        t.join()
    deadline = time.time() + 10
    while time.time() < deadline and cc.stat(old)["applied"] < cc.stat(new)["applied"]:
        time.sleep(0.1)
    assert cc.running(old), f"the old leader died: {cc.c.log_tail(old, 5)}"
    assert cc.stat(old)["applied"] >= cc.stat(new)["commit"] - 5
    assert 200 not in answers, answers  # none of the writes nobody else saw was acknowledged
    cc.net.heal()
    an = chaos.Anomalies()
    chaos.converge(cc, an, "after healing", timeout=30)
    assert not an.items, an.items
    for k in range(20):
        assert requests.get(cc.url(old, f"/kv/get/lost{k}?stale=true"), timeout=5).status_code \
            == 404


def wipe(cc, v, server_config):
    cc.kill(v)
    shutil.rmtree(cc.c.data_dir(v))
    os.makedirs(cc.c.data_dir(v))
    sc = cc.c.configs[v]["raft_config"]["server_config"]
    sc.update(server_config)
    cc.c.write_config(v)


def test_node_added_under_another_address_says_so(cc):
    """A campaign found leaders that a one-way partition could not depose: they had been wiped
    and added back with /member/add, and a node not in its own member maps announced the raft
    address it derived from listen_ip (here the node's real port) while the cluster knew it by
    the proxy's. canonical raft answers a peer at the address it announces, so the answers went
    around the proxy -- on separate hosts they would go nowhere. The node now warns when the
    configuration knows it by another address than the one it announces."""
    lid = cc.wait_leader(20)
    v = next(i for i in (1, 2, 3) if i != lid)
    assert requests.post(cc.url(lid, "/member/remove"), data=json.dumps({"peer_id": v}),
                         timeout=10).status_code == 200
    add = json.dumps({"peer_id": v, "host": cc.proxy_addr(v), "member_type": 2,
                      "node_host": cc.c.http(v)})
    # in no member map: it announces 127.0.0.1:<port> (derived from listen_ip)
    wipe(cc, v, {"peers": {}})
    assert cc.start(v) is None
    assert requests.post(cc.url(lid, "/member/add"), data=add, timeout=30).status_code == 200
    warning = "announces itself to its peers as 127.0.0.1"
    end = time.time() + 20
    while time.time() < end and warning not in cc.c.log_text(v):
        time.sleep(0.2)
    assert warning in cc.c.log_text(v)
    # in its learners map with the address it is added with (no peers: no bootstrap): quiet
    assert requests.post(cc.url(lid, "/member/remove"), data=json.dumps({"peer_id": v}),
                         timeout=10).status_code == 200
    wipe(cc, v, {"peers": {}, "learners": {str(v): cc.proxy_addr(v)}})
    os.unlink(os.path.join(cc.c.dir, f"node{v}.log"))
    assert cc.start(v) is None
    assert requests.post(cc.url(lid, "/member/add"), data=add, timeout=30).status_code == 200
    an = chaos.Anomalies()
    chaos.converge(cc, an, "after the re-add", timeout=30)
    assert not an.items, an.items
    assert "announces itself" not in cc.c.log_text(v)


def metric(cc, i, name):
    text = requests.get(cc.url(i, "/metrics"), timeout=5).text
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.split()[-1])
    return 0.0


def test_leader_change_while_a_follower_has_batches_in_flight(cc):
    """A follower gathers the writes of its clients and forwards them to the leader in batches.
    The leader changes twice while batches are in flight: once by a transfer, once because the
    leader can no longer send (it keeps proposing what it cannot commit until it hears of the new
    leader). Every acknowledged write is there, a write answered with a definite failure is not, no
    write is applied twice, and every answer is one a client can act on."""
    lid = cc.wait_leader(20)
    f = next(i for i in (1, 2, 3) if i != lid)  # every client talks to this follower
    third = 6 - lid - f
    r0 = requests.post(cc.url(lid, "/diskid/alloc"), timeout=10)
    assert r0.status_code == 200, r0.text
    first_id = r0.json()["disk_id"]
    batches0 = metric(cc, f, "clustermgr_http_forward_batches_total")
    forwarded0 = metric(cc, f, "clustermgr_http_forwarded_total")
    stop = threading.Event()
    lock = threading.Lock()
    answers = []  # (kind, key, outcome, status, body)

    def client(c):
        s = requests.Session()
        n = 0
        while not stop.is_set():
            n += 1
            key = f"spread-{c}-{n}"
            try:
                if n % 3 == 0:
                    kind = "diskid"
                    r = s.post(cc.url(f, "/diskid/alloc"), timeout=15)
                else:
                    kind = "kv"
                    r = s.post(cc.url(f, "/kv/set"), timeout=15, data=json.dumps(
                        {"key": key, "value": base64.b64encode(key.encode()).decode()}))
                out = (kind, key, chaos.classify_write(r), r.status_code, r.text)
            except requests.RequestException as e:
                out = (kind, key, chaos.exc_status(e), type(e).__name__, "")
            with lock:
                answers.append(out)

    threads = [threading.Thread(target=client, args=(c,)) for c in range(32)]
    for t in threads:
        t.start()
    try:
        time.sleep(1.5)
        # 1. a leadership transfer under load
        r = requests.post(cc.url(lid, "/leadership/transfer"), timeout=10,
                          data=json.dumps({"peer_id": third}))
        assert r.status_code == 200, r.text
        end = time.time() + 15
        while time.time() < end and cc.stat(third)["raftState"] != "StateLeader":
            time.sleep(0.05)
        assert cc.stat(third)["raftState"] == "StateLeader"
        time.sleep(1.5)
        # 2. the leader stops sending: batches already with it can no longer commit
        for o in (lid, f):
            cc.net.set(third, o, "drop")
        end = time.time() + 20
        new = 0
        while time.time() < end and not new:
            for i in (lid, f):
                if cc.stat(i)["raftState"] == "StateLeader":
                    new = i
            time.sleep(0.1)
        assert new, "no new leader after the old one stopped sending"
        time.sleep(1.5)
        cc.net.heal()
        time.sleep(1.5)
    finally:
        stop.set()
        for t in threads:
            t.join()
        cc.net.heal()
    an = chaos.Anomalies()
    chaos.converge(cc, an, "after the run", timeout=30)
    assert not an.items, an.items
    lid = cc.wait_leader(20)

    ok = [a for a in answers if a[2] == "ok"]
    assert len(ok) > 500, f"only {len(ok)} writes acknowledged"
    batches = metric(cc, f, "clustermgr_http_forward_batches_total") - batches0
    forwarded = metric(cc, f, "clustermgr_http_forwarded_total") - forwarded0
    assert 0 < batches < forwarded / 1.2, f"{forwarded} writes went in {batches} batches"
    # answers a client can act on: success, a definite failure, or a retry-safe 5xx; never a
    # 4xx for a valid request
    weird = [a for a in answers if isinstance(a[3], int) and 400 <= a[3] < 500]
    assert not weird, weird[:5]
    bodies = {a[4] for a in ok if a[0] == "kv"}
    assert len(bodies) == 1, f"kv/set answered 200 with different bodies: {list(bodies)[:3]}"
    # nothing acknowledged is lost, nothing failed for certain took effect
    s = requests.Session()
    for kind, key, outcome, _, _ in answers:
        if kind != "kv" or outcome == "info":
            continue
        r = s.get(cc.url(lid, f"/kv/get/{key}"), timeout=10)
        if outcome == "ok":
            assert r.status_code == 200, f"acknowledged {key} is lost: {r.status_code} {r.text}"
            assert base64.b64decode(r.json()["value"]) == key.encode(), r.text
        else:
            assert r.status_code == 404, f"{key} was answered with a failure but is there"
    # no write applied twice: the disk id counter moved once per allocation that took effect
    ids = [json.loads(a[4])["disk_id"] for a in answers if a[0] == "diskid" and a[2] == "ok"]
    assert len(ids) == len(set(ids)), "a disk id was handed out twice"
    unknown = sum(1 for a in answers if a[0] == "diskid" and a[2] == "info")
    r = requests.post(cc.url(lid, "/diskid/alloc"), timeout=10)
    assert r.status_code == 200, r.text
    applied = r.json()["disk_id"] - first_id - 1
    assert len(ids) <= applied <= len(ids) + unknown, \
        f"{applied} allocations applied for {len(ids)} acknowledged and {unknown} unknown"
    outcomes = {o: sum(1 for a in answers if a[2] == o) for o in ("ok", "fail", "info")}
    print(f"answers {outcomes}; {forwarded:.0f} writes forwarded in {batches:.0f} batches; "
          f"{applied} disk ids applied for {len(ids)} acknowledged")
