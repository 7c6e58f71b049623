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
