"""The service registry: register, unregister, heartbeat, get, list (spec §5.3, fixtures 35-38),
and expiry stamped by the proposer."""
import time

import pytest

ALLOC = {"cluster_id": 1, "name": "proxy", "host": "http://127.0.0.1:9600", "idc": "z0",
         "timeout": 30}
NODE = {"cluster_id": 1, "name": "proxy", "host": "http://127.0.0.1:9600", "idc": "z0"}


def test_shapes_match_the_fixtures(cluster3):
    c = cluster3
    r = c.post(1, "/service/register", ALLOC)
    assert (r.status_code, r.text) == (200, "")
    for i in (1, 2, 3):
        r = c.get(i, "/service/get?name=proxy")
        assert r.status_code == 200 and r.headers["Content-Type"] == "application/json"
        assert r.text == '{"nodes":[{"cluster_id":1,"name":"proxy","host":"http://127.0.0.1:9600","idc":"z0"}]}'
        assert r.json() == {"nodes": [NODE]}
    assert c.get(2, "/service/get?name=nosuch").text == '{"nodes":null}'
    assert c.get(3, "/service/list").json()["nodes"] == [NODE]
    # registering again replaces the node
    assert c.post(2, "/service/register", dict(ALLOC, timeout=60)).status_code == 200
    assert c.get(3, "/service/list").json()["nodes"] == [NODE]
    assert c.post(3, "/service/unregister", {"name": "proxy", "host": NODE["host"]}).status_code == 200
    assert c.get(1, "/service/list").text == '{"nodes":null}'


@pytest.mark.parametrize("change,status,message", [
    ({"cluster_id": 2}, 922, "request params error, invalid clusterID"),
    ({"idc": "z9"}, 923, "request params error,invalid idc"),
    ({"idc": ""}, 923, "request params error,invalid idc"),
    ({"host": "https://127.0.0.1:9600"}, 925, "register service params is invalid"),
    ({"host": "http://localhost:9600"}, 925, "register service params is invalid"),
    ({"host": "http://127.0.0.1"}, 925, "register service params is invalid"),
    ({"host": "127.0.0.1:9600"}, 925, "register service params is invalid"),
    ({"host": ""}, 925, "register service params is invalid"),
])
def test_register_validation(cluster3, change, status, message):
    r = cluster3.post(2, "/service/register", dict(ALLOC, **change))
    assert (r.status_code, r.json()) == (status, {"error": message})


def test_register_argument_errors_and_lenient_fields(cluster3):
    c = cluster3
    for body, field in ((dict(ALLOC, timeout="x"), "timeout"), (dict(ALLOC, cluster_id=-1), "cluster_id"),
                        (dict(ALLOC, name=7), "name"), (dict(ALLOC, host="http://1.2.3.4:1" + "0" * 300), "host")):
        r = c.post(1, "/service/register", body)
        assert r.status_code == 400 and r.json()["code"] == "Argument" and field in r.json()["error"]
    r = c.post(1, "/service/register", "")
    assert r.status_code == 400 and r.json()["code"] == "Argument"
    # cluster_id is compared after truncation to 32 bits; the port is not checked (as the reference)
    ok = dict(ALLOC, cluster_id=(1 << 32) + 1, host="http://10.1.1.1:notaport", name="lenient")
    assert c.post(1, "/service/register", ok).status_code == 200
    listed = [n for n in c.get(2, "/service/list").json()["nodes"] if n["name"] == "lenient"]
    assert listed == [{"cluster_id": (1 << 32) + 1, "name": "lenient", "host": "http://10.1.1.1:notaport",
                       "idc": "z0"}]
    assert c.post(1, "/service/unregister", {"name": "lenient", "host": "http://10.1.1.1:notaport"}).status_code == 200
    # unknown nodes
    for route in ("/service/unregister", "/service/heartbeat"):
        r = c.post(3, route, {"name": "nosuch", "host": "http://1.1.1.1:1"})
        assert (r.status_code, r.json()) == (404, {"error": "Not Found"})
    r = c.get(1, "/service/get")
    assert r.status_code == 400 and "name" in r.json()["error"]


def test_expiry_heartbeat_and_restart(make_cluster):
    c = make_cluster(nodes=3)
    host = "http://10.0.0.9:9100"
    live = lambda i, **kw: c.get(i, "/service/get?name=ALLOCATOR", **kw).json()["nodes"]  # noqa: E731
    assert c.post(2, "/service/register", dict(ALLOC, name="ALLOCATOR", host=host, timeout=2)).status_code == 200
    assert c.post(1, "/service/register", dict(ALLOC, name="MQPROXY", host=host, timeout=0)).status_code == 200
    c.wait_applied(c.stat(c.wait_leader())["raft_status"]["commit"])
    # the expiry was stamped once, by the proposer: every replica holds identical state
    dumps = {c.get(i, "/snapshot/dump").content for i in (1, 2, 3)}
    assert len(dumps) == 1
    for i in (1, 2, 3):
        assert [n["host"] for n in live(i)] == [host]
        # timeout 0: registered, listed, never returned by get
        assert c.get(i, "/service/get?name=MQPROXY").json() == {"nodes": None}
    time.sleep(2.3)
    for i in (1, 2, 3):
        assert live(i) is None
        assert live(i, params={"stale": "true"}) is None
        names = sorted(n["name"] for n in c.get(i, "/service/list").json()["nodes"])
        assert names == ["ALLOCATOR", "MQPROXY"]  # expired nodes stay listed
    # a heartbeat (also of an expired node) renews it from the heartbeat's time
    assert c.post(3, "/service/heartbeat", {"name": "ALLOCATOR", "host": host}).status_code == 200
    for i in (1, 2, 3):
        assert [n["host"] for n in live(i)] == [host]
    # the registry survives a whole-cluster kill -9 (it lives in the raft log and snapshots)
    for i in (1, 2, 3):
        c.kill(i)
    c.start_all()
    names = sorted(n["name"] for n in c.get(1, "/service/list").json()["nodes"])
    assert names == ["ALLOCATOR", "MQPROXY"]
    assert c.post(2, "/service/unregister", {"name": "MQPROXY", "host": host}).status_code == 200
    assert [n["name"] for n in c.get(3, "/service/list").json()["nodes"]] == ["ALLOCATOR"]
