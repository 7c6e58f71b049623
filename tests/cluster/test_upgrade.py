"""A rolling upgrade from the previous landed release to this tree, under a steady write load.

The previous release is built from its commit with the same make, in a git worktree under
build/prev/ (kept between runs). Three nodes start on it with a simulated fleet of 2022-generation
blobnodes (disks, heartbeats, chunks for the volumes the leader creates) and clients writing KV
keys, allocating bid ranges, adding disks and leasing volumes. The nodes are then restarted on this
tree's binary one at a time, followers first, leadership moved off the last one before it stops.

Checked: every acknowledged write is on every node at the end; the nodes' state digests are equal
(the CRC of GET /snapshot/dump at the same applied index); the node API (format 2) is refused
while any member runs the old release and works once the last one was upgraded; and a node put
back on the old binary after the cluster version moved refuses to start, then comes back on the
new one. The timeline of the run is written to build/upgrade-timeline.txt.
"""
import os
import subprocess
import threading
import time
import zlib

import requests

from cmcluster import BINARY, BUILD, ROOT, Cluster, pick_ports
from test_disks import SIM

PREVIOUS = "37517c6"  # the last landed release before cluster versions (format 1)
PREV_DIR = os.path.join(ROOT, "build", "prev", PREVIOUS)
PREV_BIN = os.path.join(PREV_DIR, "build", "clustermgr")


def build_previous():
    """The previous release's binary, built once from its commit in a git worktree."""
    if os.path.exists(PREV_BIN):
        return PREV_BIN
    r = subprocess.run(["git", "-C", ROOT, "cat-file", "-e", PREVIOUS + "^{commit}"],
                       capture_output=True)
    assert r.returncode == 0, f"commit {PREVIOUS} is not in this clone: the test needs history"
    if os.path.exists(PREV_DIR):
        subprocess.run(["git", "-C", ROOT, "worktree", "remove", "--force", PREV_DIR],
                       capture_output=True)
        subprocess.run(["rm", "-rf", PREV_DIR], check=True)
    subprocess.run(["git", "-C", ROOT, "worktree", "prune"], check=True)
    subprocess.run(["git", "-C", ROOT, "worktree", "add", "--detach", "--force", PREV_DIR,
                    PREVIOUS], check=True, capture_output=True)
    p = subprocess.run(["make", "-C", PREV_DIR, "-j2", "build/clustermgr"], capture_output=True,
                       text=True)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    return PREV_BIN


class Timeline:
    def __init__(self):
        self.t0 = time.time()
        self.lines = []

    def __call__(self, what):
        self.lines.append(f"{time.time() - self.t0:7.2f} s  {what}")

    def save(self):
        os.makedirs(os.path.join(ROOT, BUILD), exist_ok=True)
        with open(os.path.join(ROOT, BUILD, "upgrade-timeline.txt"), "w") as f:
            f.write("\n".join(self.lines) + "\n")


class Load(threading.Thread):
    """Writes through whichever node answers; keeps what was acknowledged."""

    def __init__(self, c):
        super().__init__(daemon=True)
        self.c = c
        self.stop = threading.Event()
        self.paused = threading.Event()
        self.idle = threading.Event()
        self.kv = {}       # key -> value, acknowledged
        self.config = {}   # config key -> value, acknowledged
        self.bids = []     # acknowledged ranges
        self.disks = []    # acknowledged disk ids
        self.leases = 0
        self.errors = 0
        self.s = requests.Session()

    def post(self, i, path, body):
        return self.s.post(self.c.url(i, path), json=body, timeout=5)

    def run(self):
        k = 0
        while not self.stop.is_set():
            if self.paused.is_set():
                self.idle.set()
                time.sleep(0.02)
                continue
            self.idle.clear()
            i = 1 + k % 3
            k += 1
            try:
                r = self.post(i, "/kv/set", {"key": f"up/{k}", "value": "dmFsdWU="})
                if r.status_code == 200:
                    self.kv[f"up/{k}"] = "dmFsdWU="
                if k % 3 == 0:
                    key = f"up-config-{k % 40}"
                    r = self.post(i, "/config/set", {"key": key, "value": str(k)})
                    if r.status_code == 200:
                        self.config[key] = str(k)
                r = self.post(i, "/bid/alloc", {"count": 7})
                if r.status_code == 200:
                    self.bids.append((r.json()["start_bid"], r.json()["end_bid"]))
                if k % 5 == 0:
                    r = self.post(i, "/diskid/alloc", None)
                    if r.status_code == 200:
                        d = r.json()["disk_id"]
                        body = {"cluster_id": 1, "idc": "z0", "rack": "r0",
                                "host": f"http://127.0.0.9:{1000 + k}", "path": "/d",
                                "status": 1, "readonly": False, "disk_id": d,
                                "create_time": "2025-01-01T00:00:00Z",
                                "last_update_time": "2025-01-01T00:00:00Z",
                                "used": 0, "free": 1 << 30, "size": 1 << 30}
                        if self.post(i, "/disk/add", body).status_code == 200:
                            self.disks.append(d)
                if k % 7 == 0:
                    r = self.post(i, "/volume/alloc", {"host": "10.0.0.1", "code_mode": 11,
                                                       "count": 1})
                    if r.status_code == 200:
                        self.leases += 1
            except requests.RequestException:
                self.errors += 1
                time.sleep(0.05)


def digest(c, i):
    r = requests.get(c.url(i, "/snapshot/dump"), timeout=10)
    assert r.status_code in (200, 206), r.text
    return r.headers["Raft-Snapshot-Index"], zlib.crc32(r.content[:-4]) & 0xffffffff


def same_digests(c, load):
    """Pause the writes, let every node apply the same index, compare the state digests."""
    load.paused.set()
    load.idle.wait(10)
    try:
        return equal_digests(c)
    finally:
        load.paused.clear()


def equal_digests(c, nodes=(1, 2, 3)):
    """The digests of `nodes` at one applied index (the leader's own jobs and the simulated
    blobnodes still write now and then: ask again until every node answered at one index)."""
    for _ in range(50):
        lid = c.wait_leader()
        c.wait_applied(c.stat(lid)["raft_status"]["commit"], nodes=list(nodes))
        d = {i: digest(c, i) for i in nodes}
        if len({idx for idx, _ in d.values()}) == 1:
            if len(set(d.values())) != 1 and os.environ.get("UPGRADE_DEBUG"):
                for i in nodes:
                    with open(os.path.join(c.dir, f"dump{i}"), "wb") as f:
                        f.write(requests.get(c.url(i, "/snapshot/dump"), timeout=10).content)
            assert len(set(d.values())) == 1, d
            return d[nodes[0]]
        time.sleep(0.05)
    raise AssertionError(f"no common applied index to compare: {d}")


def node_add(c, i, host="http://10.9.0.1:8899"):
    return requests.post(c.url(i, "/node/add"), timeout=10, json={
        "cluster_id": 1, "disk_type": 1, "idc": "z0", "rack": "r", "host": host, "role": 1})


def wait_ready(c, i, timeout=30):
    end = time.time() + timeout
    while time.time() < end:
        try:
            if requests.get(c.url(i, "/readyz"), timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"node {i} not ready: {c.log_tail(i)}")


def test_rolling_upgrade_from_the_previous_release(make_cluster):
    tl = Timeline()
    old = build_previous()
    tl(f"built the previous release ({PREVIOUS})")
    # the previous release knows heartbeat_notify_interval_s from 0 on only
    c = make_cluster(nodes=3, binary=old, extra={"heartbeat_notify_interval_s": 10},
                     snapshot_threshold=256)
    tl("3 nodes on the previous release")
    port = pick_ports(4)
    hosts = ",".join(c.http(i) for i in (1, 2, 3))
    sim = subprocess.Popen([SIM, "--generation", "2022", "--cm", hosts, "-H", "4", "-D", "3",
                            "-p", str(port), "-i", "1"], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    load = Load(c)
    try:
        load.start()
        time.sleep(3)
        tl(f"load running: {len(load.kv)} keys, {len(load.disks)} disks, {load.leases} leases")
        assert node_add(c, 1).status_code == 404  # the previous release has no node API

        lid = c.wait_leader()
        order = [i for i in (1, 2, 3) if i != lid] + [lid]
        for step, i in enumerate(order):
            if i == c.wait_leader():
                to = next(x for x in order if x != i and c.binaries.get(x) == BINARY)
                c.transfer(to)
                tl(f"leadership moved from node {i} to node {to}")
            assert c.stop(i) == 0
            c.binaries[i] = BINARY
            c.start(i)
            wait_ready(c, i)
            tl(f"node {i} restarted on this release ({step + 1} of 3)")
            if step == 0:
                # a follower of this release forwards to a leader of the previous one, which
                # has no batch route: it answers 404 and the follower forwards one by one
                for k in range(20):
                    key = f"up/via-new-follower-{k}"
                    r = requests.post(c.url(i, "/kv/set"), timeout=10,
                                      json={"key": key, "value": "dg=="})
                    assert r.status_code == 200, r.text
                    load.kv[key] = "dg=="
                assert "takes no forwarded write batches" in c.log_text(i)
                tl("writes through the new follower to the old leader answered 200")
                # lead from the new binary while the other two still run the old one
                c.transfer(i)
                tl(f"leadership moved to node {i}, the only one on this release")
            if step < 2:
                time.sleep(1.5)  # writes keep flowing with the mixed membership
                # old and new binaries hold the same state, byte for byte, at version 1
                tl(f"equal state digests, {3 - step - 1} node(s) still on the previous "
                   f"release: {same_digests(c, load)}")
                r = node_add(c, i)
                assert r.status_code == 503, r.text
                assert "the cluster runs version 1" in r.json()["error"], r.text
                tl("POST /node/add refused: 503 " + r.json()["error"][:58] + "...")
                assert c.stat(i)["cluster_version"] == 1
        end = time.time() + 15
        while time.time() < end and not all(
                c.stat(x).get("cluster_version") == 2 for x in (1, 2, 3)):
            time.sleep(0.1)
        assert all(c.stat(x)["cluster_version"] == 2 for x in (1, 2, 3))
        tl("cluster version 2 on every node")
        r = node_add(c, 2)
        assert r.status_code == 200, r.text
        tl(f"POST /node/add answered node {r.json()['node_id']}")
        time.sleep(2)
    finally:
        load.stop.set()
        load.join()
        sim.terminate()
        sim.wait()
    tl(f"load stopped: {len(load.kv)} keys, {len(load.bids)} bid ranges, {len(load.disks)} "
       f"disks, {load.leases} volume leases acknowledged, {load.errors} requests failed")
    assert len(load.kv) > 100 and len(load.disks) > 5 and load.leases > 5

    lid = c.wait_leader()
    tl(f"equal state digests on the 3 nodes: {equal_digests(c)}")
    # every acknowledged write is there, on every node
    for i in (1, 2, 3):
        got = {}
        marker = ""
        while True:
            page = requests.get(c.url(i, f"/kv/list?prefix=up/&count=1000&marker={marker}"),
                                timeout=10).json()
            got.update({e["key"]: e["value"] for e in page["kvs"]})
            if not page["marker"]:
                break
            marker = page["marker"]
        assert all(got.get(k) == v for k, v in load.kv.items())
        for key, v in load.config.items():
            assert requests.get(c.url(i, f"/config/get?key={key}"), timeout=5).json() == v
        for d in load.disks[::7]:
            assert requests.get(c.url(i, f"/disk/info?disk_id={d}"), timeout=5).status_code == 200
    ranges = sorted(load.bids)
    assert all(a[1] < b[0] for a, b in zip(ranges, ranges[1:]))
    tl(f"every acknowledged key, config value ({len(load.config)} keys), disk and bid range "
       "present; bid ranges disjoint")

    # a node put back on the previous release refuses the data directory the new one wrote
    victim = next(i for i in (1, 2, 3) if i != lid)
    end = time.time() + 10
    while time.time() < end and "took a snapshot" not in c.log_text(victim).split(
            "cluster version 1 -> 2")[-1]:
        time.sleep(0.1)
    assert c.stop(victim) == 0
    c.binaries[victim] = old
    p = c.start(victim, wait=False)
    try:
        p.wait(timeout=20)
    except subprocess.TimeoutExpired:
        raise AssertionError("the previous release started on an upgraded data directory")
    assert p.returncode != 0
    tail = c.log_text(victim).split("cluster version 1 -> 2")[-1]
    # its snapshot has the cluster section (module 9), and the node section (8) once a node was
    # added; the previous release refuses either
    assert "cannot restore snapshot: snapshot has an unknown section for module" in tail, \
        tail[-2000:]
    tl(f"node {victim} on the previous release: exit status {p.returncode}, "
       "'cannot restore snapshot: snapshot has an unknown section for module ...'")
    c.binaries[victim] = BINARY
    c.start(victim)
    wait_ready(c, victim)
    equal_digests(c, (victim, lid))
    tl(f"node {victim} back on this release, caught up, same digest")
    tl.save()


FUTURE_DIR = os.path.join(ROOT, "build", "future")
FUTURE_BIN = os.path.join(FUTURE_DIR, "clustermgr")
APPEND = os.path.join(ROOT, BUILD, "tests", "tools", "append_entry")


def build_future():
    """This tree built as a later release would be: one that applies format 3."""
    if not os.path.exists(FUTURE_BIN):
        p = subprocess.run(["make", "-C", ROOT, "-j2", "BUILD=build/future",
                            "OPT=-O1 -g -DCM_FORMAT_VERSION=3", "build/future/clustermgr"],
                           capture_output=True, text=True)
        assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    return FUTURE_BIN


def kv_set_payload(key, value):
    return (bytes([len(key)]) + key.encode() + value.encode()).hex()


def test_a_command_of_a_later_format_stops_the_node_until_a_release_that_reads_it(make_cluster):
    """A node whose log holds a command of a format above its own (possible only when an older
    binary is started on a newer cluster's data directory) applies nothing from there on, says
    why in its log and /readyz, answers every request 503 instead of from a state that lags, and
    applies the whole log once restarted on a release that reads the format."""
    future = build_future()
    c = make_cluster(nodes=1)
    assert c.post(1, "/kv/set", {"key": "before", "value": "MQ=="}).status_code == 200
    assert c.stop(1) == 0
    p = subprocess.run([APPEND, c.data_dir(1), "1", c.raft_addr(1), "3", "7", "1",
                        kv_set_payload("later", "v")], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    c.start(1)
    end = time.time() + 20
    while time.time() < end and "stopped applying" not in c.log_text(1):
        time.sleep(0.1)
    assert "a log entry needs format version 3 and this binary applies up to 2" in c.log_text(1)
    r = requests.get(c.url(1, "/readyz"), timeout=5)
    assert r.status_code == 503 and "needs format version 3" in r.json()["reason"], r.text
    for method, path, body in (("GET", "/kv/get/before", None),
                               ("POST", "/kv/set", {"key": "x", "value": "eA=="})):
        r = requests.request(method, c.url(1, path), json=body, timeout=10)
        assert r.status_code == 503 and "stopped applying" in r.json()["error"], r.text
    # restarted on a release that reads format 3: the log applies from the last snapshot on
    assert c.stop(1) == 0
    c.binaries[1] = future
    c.start(1)
    wait_ready(c, 1)
    assert c.get(1, "/kv/get/later").json() == {"value": "dg=="}
    assert c.get(1, "/kv/get/before").json() == {"value": "MQ=="}
