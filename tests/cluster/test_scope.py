"""Id scopes: /bid/alloc and /diskid/alloc hand out ranges that never overlap."""
import json
import signal
import threading
import time

import requests


def test_bid_alloc_shapes_and_errors(make_cluster):
    c = make_cluster(nodes=3)
    r = c.post(2, "/bid/alloc", {"count": 10})
    assert (r.status_code, r.json()) == (200, {"start_bid": 1, "end_bid": 10})
    r = c.post(3, "/bid/alloc", {"count": 5})
    assert r.json() == {"start_bid": 11, "end_bid": 15}
    r = c.post(1, "/bid/alloc", {"count": 100001})
    assert (r.status_code, r.json()) == (400, {"error": "Illegal Arguments"})
    r = c.post(1, "/bid/alloc", {"count": 0})
    assert (r.status_code, r.json()) == (500, {"error": "request count is invalid", "code": "InternalServerError"})
    r = c.post(1, "/bid/alloc", {"count": -3})
    assert r.status_code == 400 and r.json()["code"] == "Argument"
    r = c.post(1, "/diskid/alloc", "null")
    assert (r.status_code, r.json()) == (200, {"disk_id": 1})
    assert c.post(2, "/diskid/alloc").json() == {"disk_id": 2}


def test_concurrent_ranges_disjoint_across_leader_changes(make_cluster):
    c = make_cluster(nodes=3)
    got, errors = [], []
    lock = threading.Lock()
    stop = threading.Event()

    def client(node):
        s = requests.Session()
        last = 0
        while not stop.is_set():
            try:
                r = s.post(c.url(node, "/bid/alloc"), data=json.dumps({"count": 7}), timeout=15)
            except requests.RequestException:
                continue
            if r.status_code == 200:
                b = r.json()
                assert b["end_bid"] - b["start_bid"] == 6
                assert b["start_bid"] > last, "ranges of one client must increase"
                last = b["end_bid"]
                with lock:
                    got.append((b["start_bid"], b["end_bid"]))
            else:
                with lock:
                    errors.append(r.status_code)

    threads = [threading.Thread(target=client, args=(1 + k % 3,)) for k in range(6)]
    for t in threads:
        t.start()
    for _ in range(2):
        time.sleep(0.7)
        lid = c.wait_leader()
        target = next(i for i in (1, 2, 3) if i != lid)
        c.post(lid, "/leadership/transfer", {"peer_id": target})
    time.sleep(0.7)
    lid = c.wait_leader()
    c.kill(lid, signal.SIGKILL)
    time.sleep(2.0)
    c.start(lid)
    time.sleep(0.7)
    stop.set()
    for t in threads:
        t.join()
    assert len(got) > 200
    got.sort()
    for (a1, b1), (a2, b2) in zip(got, got[1:]):
        assert a2 > b1, f"overlap {a1}-{b1} and {a2}-{b2}"
    # a whole-cluster restart does not hand out old ids again
    top = got[-1][1]
    for i in (1, 2, 3):
        c.kill(i)
    c.start_all()
    assert c.post(1, "/bid/alloc", {"count": 1}).json()["start_bid"] > top
