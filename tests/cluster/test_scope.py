"""Id scopes: /bid/alloc and /diskid/alloc hand out ranges that never overlap."""
import json
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


class BidClient(threading.Thread):
    """Allocates ranges from one node until told to stop, checking that its own ranges increase."""

    def __init__(self, c, node, k, progress):
        super().__init__(daemon=True)
        self.c, self.node, self.count = c, node, 1 + k % 9
        self.progress = progress
        self.ranges, self.failures, self.errors = [], 0, []
        self.stop = threading.Event()

    def run(self):
        s = requests.Session()
        url = self.c.url(self.node, "/bid/alloc")
        body = json.dumps({"count": self.count})
        last = 0
        while not self.stop.is_set():
            try:
                r = s.post(url, data=body, timeout=15)
            except requests.RequestException:
                self.failures += 1
                time.sleep(0.02)
                continue
            if r.status_code != 200:
                self.failures += 1  # 906/907/502 while leadership moves or nodes restart
                time.sleep(0.005)
                continue
            b = r.json()
            if b["end_bid"] - b["start_bid"] != self.count - 1 or b["start_bid"] <= last:
                self.errors.append((last, b))
            last = b["end_bid"]
            self.ranges.append((b["start_bid"], b["end_bid"]))
            self.progress.inc()


class Progress:
    def __init__(self):
        self.n, self.lock = 0, threading.Lock()

    def inc(self):
        with self.lock:
            self.n += 1

    def wait(self, n, timeout=240):
        end = time.time() + timeout
        while self.n < n:
            assert time.time() < end, f"only {self.n} of {n} allocations in {timeout}s"
            time.sleep(0.02)


def check_disjoint(clients):
    for cl in clients:
        assert not cl.errors, f"a client's ranges did not increase: {cl.errors[:3]}"
    ranges = sorted(r for cl in clients for r in cl.ranges)
    for (a1, b1), (a2, b2) in zip(ranges, ranges[1:]):
        assert a2 > b1, f"overlap {a1}-{b1} and {a2}-{b2}"
    return ranges


def test_10k_allocations_across_transfers_and_a_whole_cluster_crash(make_cluster):
    """10,000 /bid/alloc calls from 9 clients spread over all nodes while leadership is moved
    twice; then 10,000 more while the whole cluster is killed with SIGKILL and restarted. Every
    acknowledged range is disjoint from every other, and each client's ranges increase."""
    c = make_cluster(nodes=3)
    progress = Progress()
    clients = [BidClient(c, 1 + k % 3, k, progress) for k in range(9)]
    for cl in clients:
        cl.start()
    leaders = [c.wait_leader()]
    for target_n in (3000, 6000):
        progress.wait(target_n)
        lid = leaders[-1]
        target = next(i for i in (1, 2, 3) if i != lid)
        assert c.post(lid, "/leadership/transfer", {"peer_id": target}).status_code == 200
        leaders.append(c.wait_leader(exclude=(lid,)))
    progress.wait(10000)
    assert len(set(leaders)) >= 2 and leaders[1] != leaders[0] and leaders[2] != leaders[1]
    first = progress.n
    # the same load through a whole-cluster kill -9 and restart
    progress.wait(first + 3000)
    for i in (1, 2, 3):
        c.kill(i)
    crashed_at = progress.n
    c.start_all()
    progress.wait(first + 10000)
    for cl in clients:
        cl.stop.set()
    for cl in clients:
        cl.join(timeout=30)
    ranges = check_disjoint(clients)
    assert len(ranges) >= 20000 and progress.n > crashed_at
    top = ranges[-1][1]
    # and a final restart hands out nothing old
    for i in (1, 2, 3):
        c.kill(i)
    c.start_all()
    assert c.post(2, "/bid/alloc", {"count": 1}).json()["start_bid"] > top
