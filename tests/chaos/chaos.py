#!/usr/bin/python3
"""Chaos campaigns: a cluster of real clustermgr processes under a concurrent client workload
while a nemesis injects faults, then checks on the recorded history.

    tests/chaos/chaos.py --seed 7 --duration 600 --nodes 5 --report build/chaos/report.md

Faults: kill -9 (leader, follower, a majority, everyone) and restart; SIGSTOP/SIGCONT (a paused
leader or follower); leadership-transfer storms; member remove and re-add (keeping or wiping the
data directory); network partitions, one-way links, cut and flapping links, and delays through a
userspace proxy in front of every raft port (netproxy.py); a full disk (the data directory of one
node is a size-limited tmpfs that the nemesis fills); write/fsync errors on one node's data
directory (faultio.c, preloaded).

Checks: every kv and config key is a linearizable register (linearize.py; timeouts and
ambiguous errors count as "may or may not have happened"); id ranges from /bid/alloc and ids
from /diskid/alloc never overlap; every acknowledged disk, service and write-once kv key is
present at the end, and heartbeats of acknowledged disks and services never answer "not found";
after healing, every node reaches the same applied index with the same state digest (the CRC of
the canonical snapshot stream of GET /snapshot/dump), also after a kill -9 and restart of every
node; no node exits unless the nemesis stopped it; no sanitizer report in any node log.
"""
import argparse
import base64
import json
import os
import random
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback

import requests

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "cluster"))
sys.path.insert(0, HERE)
from cmcluster import BUILD, ROOT, Cluster, pick_ports  # noqa: E402
import linearize  # noqa: E402

SIM = os.path.join(ROOT, BUILD, "blobnode-sim")
EC3P3 = 11  # the code mode of the generated single-IDC configs
RETAIN_S = 5  # volume lease length: short, so that leases lapse and volumes change hands

PROXY_IP = "127.0.0.2"
TIB = 1 << 40

FAULTS = ("kill_leader", "kill_follower", "kill_majority", "kill_all", "pause_leader",
          "pause_follower", "transfer_storm", "member_readd", "member_wipe_readd",
          "partition_isolate_leader", "partition_split", "partition_bridge", "partition_oneway",
          "link_flap", "net_delay", "disk_full", "io_error", "blobnodes_down")


def now():
    return time.monotonic()


class Anomalies:
    def __init__(self):
        self.items = []
        self.lock = threading.Lock()

    def add(self, kind, msg):
        with self.lock:
            self.items.append({"kind": kind, "msg": msg})


# ---------------------------------------------------------------------------------------------
# the network


class Net:
    """Controls netproxy.py, the proxy in front of every raft port."""

    def __init__(self, routes, logpath):
        args = [f"{d}={l}={t}" for d, (l, t) in sorted(routes.items())]
        self.log = open(logpath, "ab")
        self.p = subprocess.Popen([sys.executable, os.path.join(HERE, "netproxy.py")] + args,
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=self.log, text=True, bufsize=1)
        line = self.p.stdout.readline()
        if line.strip() != "ready":
            raise RuntimeError(f"netproxy did not start: {line!r}")
        self.lock = threading.Lock()
        self.nodes = sorted(routes)

    def cmd(self, **c):
        with self.lock:
            self.p.stdin.write(json.dumps(c) + "\n")
            self.p.stdin.flush()
            out = json.loads(self.p.stdout.readline())
        if not out.get("ok"):
            raise RuntimeError(f"netproxy: {out}")
        return out

    def set(self, src, dst, mode, **kw):
        self.cmd(cmd="set", src=src, dst=dst, mode=mode, **kw)

    def partition(self, groups, mode="drop"):
        """Cut every link between nodes of different groups (both directions)."""
        where = {n: gi for gi, g in enumerate(groups) for n in g}
        for a in self.nodes:
            for b in self.nodes:
                if a != b and where.get(a) != where.get(b):
                    self.set(a, b, mode)

    def heal(self):
        self.cmd(cmd="heal")

    def stats(self):
        return self.cmd(cmd="stats")["links"]

    def close(self):
        try:
            self.p.stdin.close()
            self.p.wait(timeout=5)
        except Exception:
            self.p.kill()
            self.p.wait()
        self.log.close()


# ---------------------------------------------------------------------------------------------
# the cluster


class ChaosCluster:
    """A cmcluster.Cluster whose nodes reach each other's raft ports only through the proxy,
    with one node's data directory on a small tmpfs (when mounting is possible)."""

    def __init__(self, workdir, nodes, disk_node=None, disk_mb=64, faultio=None,
                 snapshot_threshold=200, log_level="info"):
        self.n = nodes
        extra = {"raft_config": {"server_config": {"propose_timeout": 4}},
                 "disk_mgr_config": {"heartbeat_expire_interval_s": 3600},
                 "volume_mgr_config": {"min_allocable_volume_count": 6, "retain_time_s": RETAIN_S,
                                       "check_expired_volume_interval_s": 1,
                                       "blob_node_config": {"client_timeout_ms": 3000}}}
        self.c = Cluster(nodes=nodes, max_nodes=nodes, workdir=workdir, extra=extra,
                         snapshot_threshold=snapshot_threshold, log_level=log_level)
        for i in range(1, nodes + 1):
            sc = self.c.configs[i]["raft_config"]["server_config"]
            sc["listen_ip"] = "127.0.0.1"
            sc["peers"] = {str(k): self.proxy_addr(k) for k in range(1, nodes + 1)}
            sc["snapshot_min_interval_ms"] = 500
            self.c.write_config(i)
        self.net = Net({i: (self.proxy_addr(i), self.c.raft_addr(i)) for i in range(1, nodes + 1)},
                       os.path.join(workdir, "netproxy.log"))
        self.disk_node = None
        self.disk_skip = None
        self.mounted = None
        if disk_node:
            d = self.c.data_dir(disk_node)
            os.makedirs(d, exist_ok=True)
            r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={disk_mb}m", "tmpfs", d],
                               capture_output=True, text=True)
            if r.returncode == 0:
                self.disk_node, self.mounted = disk_node, d
            else:
                self.disk_skip = f"cannot mount a tmpfs: {r.stderr.strip() or r.returncode}"
        self.faultio = faultio  # path of the preloadable library, or None
        self.faultio_node = nodes if faultio else None
        self.expected_down = set()  # nodes the nemesis stopped on purpose
        self.paused = set()
        self.exits = []  # unexpected exits: (node, returncode, time)
        self.lock = threading.RLock()

    def proxy_addr(self, i):
        return f"{PROXY_IP}:{self.c.base + 1000 + i - 1}"

    # the simulated blobnodes that hold the volumes' chunks
    def start_sim(self, hosts=3, disks=4):
        if not os.path.exists(SIM):
            return "blobnode-sim is not built"
        if getattr(self, "sim_base", None) is None:
            self.sim_base = pick_ports(hosts)
        self.sim_args = [SIM, "--cm", ",".join(self.c.http(i) for i in range(1, self.n + 1)),
                         "-H", str(hosts), "-D", str(disks), "-p", str(self.sim_base), "-i", "2",
                         "--timeout-ms", "3000"]
        self.sim_log = open(os.path.join(self.c.dir, "sim.log"), "ab")
        self.sim = subprocess.Popen(self.sim_args, stdout=self.sim_log, stderr=subprocess.STDOUT)
        self.sim_disks = hosts * disks
        return None

    def sim_registered(self):
        try:
            return requests.get(f"http://127.0.0.1:{self.sim_base}/sim/stats",
                                timeout=2).json()["registered"]
        except (requests.RequestException, ValueError, KeyError):
            return 0

    def stop_sim(self):
        p = getattr(self, "sim", None)
        if p is None:
            return None
        if p.poll() is None:
            p.send_signal(signal.SIGCONT)
            p.terminate()
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        self.sim = None
        self.sim_log.close()
        return p.returncode

    def fault_flag(self, i):
        return os.path.join(self.c.dir, f"node{i}.faultio")

    # processes
    def start(self, i):
        with self.lock:
            env = None
            if self.faultio and i == self.faultio_node:
                env = dict(os.environ)
                env["LD_PRELOAD"] = self.faultio
                env["CM_FAULTIO_DIR"] = self.c.data_dir(i)
                env["CM_FAULTIO_FLAG"] = self.fault_flag(i)
                env["ASAN_OPTIONS"] = (env.get("ASAN_OPTIONS", "") +
                                       ":verify_asan_link_order=0").lstrip(":")
            c = self.c
            log = open(os.path.join(c.dir, f"node{i}.log"), "ab")
            c.logs[i] = log
            c.procs[i] = subprocess.Popen([c.binary, "-f", c.config_path(i)], stdout=log,
                                          stderr=subprocess.STDOUT, env=env)
            self.expected_down.discard(i)
            self.paused.discard(i)
        try:
            c.wait_http(i, timeout=30)
        except (RuntimeError, TimeoutError) as e:
            return str(e)
        return None

    def start_all(self):
        for i in range(1, self.n + 1):
            self.start(i)

    def running(self, i):
        p = self.c.procs.get(i)
        return p is not None and p.poll() is None

    def kill(self, i, sig=signal.SIGKILL):
        with self.lock:
            self.expected_down.add(i)
            p = self.c.procs.get(i)
            if p is None:
                return
            if i in self.paused:
                p.send_signal(signal.SIGCONT)
                self.paused.discard(i)
            if p.poll() is None:
                p.send_signal(sig)
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()

    def pause(self, i):
        with self.lock:
            if self.running(i):
                self.c.procs[i].send_signal(signal.SIGSTOP)
                self.paused.add(i)

    def resume(self, i):
        with self.lock:
            if i in self.paused and self.running(i):
                self.c.procs[i].send_signal(signal.SIGCONT)
            self.paused.discard(i)

    def reap(self):
        """Notice nodes that exited without the nemesis asking: returns them."""
        gone = []
        with self.lock:
            for i, p in self.c.procs.items():
                if p.poll() is not None and i not in self.expected_down:
                    self.exits.append((i, p.returncode, now()))
                    self.expected_down.add(i)
                    gone.append((i, p.returncode))
        return gone

    # HTTP
    def url(self, i, path):
        return self.c.url(i, path)

    def stat(self, i, timeout=1.5):
        return requests.get(self.url(i, "/stat"), timeout=timeout).json()["raft_status"]

    def usable(self):
        return [i for i in range(1, self.n + 1) if self.running(i) and i not in self.paused]

    def leader(self):
        """The node that says it leads with the highest term, among reachable ones; or 0."""
        best, term = 0, -1
        for i in self.usable():
            try:
                st = self.stat(i)
            except (requests.RequestException, ValueError, KeyError):
                continue
            if st["raftState"] == "StateLeader" and st["term"] > term:
                best, term = i, st["term"]
        return best

    def wait_leader(self, timeout=30):
        end = now() + timeout
        while now() < end:
            lid = self.leader()
            if lid:
                try:
                    if requests.get(self.url(lid, "/readyz"), timeout=1.5).status_code == 200:
                        return lid
                except requests.RequestException:
                    pass
            time.sleep(0.1)
        return 0

    def voters(self, lid):
        st = self.stat(lid)
        return {p["id"]: not p["isLearner"] for p in (st.get("peers") or [])}

    def digest(self, i, timeout=10):
        """(applied index, CRC of the snapshot stream) of node i's state."""
        r = requests.get(self.url(i, "/snapshot/dump"), timeout=timeout)
        r.raise_for_status()
        body = r.content
        return int(r.headers["Raft-Snapshot-Index"]), struct.unpack(">I", body[-4:])[0], len(body)

    def shutdown(self):
        try:
            self.stop_sim()
            self.c.shutdown()
        finally:
            self.net.close()
            self.unmount()

    def unmount(self):
        if self.mounted:
            subprocess.run(["umount", "-l", self.mounted], capture_output=True)
            self.mounted = None


# ---------------------------------------------------------------------------------------------
# the history and the workload


class History:
    def __init__(self):
        self.ops = []
        self.lock = threading.Lock()
        self.t_start = now()

    def add(self, rec):
        with self.lock:
            rec["id"] = len(self.ops)
            self.ops.append(rec)


# Answers that certainly mean "not executed" besides 4xx: no leader, and the refusals of
# /volume/alloc (invalid count, no such code mode, no volume available).
DEFINITE = (907, 916, 917, 928)


def classify_write(r):
    """ok: took effect; fail: certainly did not; info: unknown."""
    if r.status_code == 200:
        return "ok"
    if r.status_code in DEFINITE or 400 <= r.status_code < 500:
        return "fail"
    return "info"


def exc_status(e):
    """A request that never reached a node certainly did nothing."""
    if isinstance(e, requests.ConnectionError) and not isinstance(e, requests.ReadTimeout):
        s = repr(e)
        if "NewConnectionError" in s or "Connection refused" in s or "ConnectTimeout" in s:
            return "fail"
    if isinstance(e, requests.ConnectTimeout):
        return "fail"
    return "info"


class Workload:
    KV_KEYS = [f"reg-{k}" for k in range(4)]
    CFG_KEYS = ["chaos_c0", "chaos_c1"]
    BIG_KEYS = [f"big-{k}" for k in range(3)]

    def __init__(self, cc, hist, anomalies, seed, clients=6, timeout=8.0):
        self.cc, self.hist, self.anom = cc, hist, anomalies
        self.seed, self.clients, self.timeout = seed, clients, timeout
        self.stop = threading.Event()
        self.big = threading.Event()  # the nemesis wants the log to grow fast
        self.threads = []
        self.lock = threading.Lock()
        self.acked_disks = {}  # disk_id -> (host, path)
        self.acked_nodes = {}  # blobnode host -> node id (CubeFS v3.5.1 nodes)
        self.disk_nodes = {}  # disk_id -> node id, for acknowledged disks added under a node
        self.acked_svcs = {}  # (name, host) -> idc
        self.acked_once = {}  # key -> value
        self.acked_ranges = []  # (start, end, op id)
        self.acked_diskids = []  # (id, op id)
        self.maybe_disks = set()
        self.leases = []  # (vid, holder ip, lease end ns, op id): every acknowledged lease
        self.leased = {}  # client -> {vid: token} it believes it holds
        self.volumes = set()  # vids seen in acknowledged allocations
        self.volumes_on = False  # set once the fleet registered and a pool exists
        self.counts = {}
        self.answers = {}  # (outcome, HTTP status or exception) -> count, outside "ok"

    def start(self):
        for c in range(self.clients):
            t = threading.Thread(target=self.run, args=(c,), daemon=True, name=f"client{c}")
            t.start()
            self.threads.append(t)

    def finish(self):
        self.stop.set()
        for t in self.threads:
            t.join(timeout=self.timeout * 4)

    def run(self, c):
        rng = random.Random(self.seed * 1000 + c)
        s = requests.Session()
        seq = 0
        ops = [("kv_w", 18), ("kv_r", 18), ("cfg_w", 5), ("cfg_r", 5), ("bid", 10),
               ("disk_add", 4), ("disk_hb", 8), ("svc_reg", 3), ("svc_hb", 6), ("kv_once", 10),
               ("diskid", 2), ("vol_alloc", 4), ("vol_retain", 6), ("node_add", 2)]
        names = [o for o, _ in ops]
        weights = [w for _, w in ops]
        while not self.stop.is_set():
            seq += 1
            kind = rng.choices(names, weights)[0]
            if self.big.is_set() and rng.random() < 0.5:
                kind = "kv_big"
            node = rng.randint(1, self.cc.n)
            try:
                getattr(self, "op_" + kind)(s, rng, c, seq, node)
            except Exception:
                self.anom.add("harness", f"client {c} op {kind}: {traceback.format_exc()}")
                time.sleep(0.1)
            time.sleep(rng.random() * 0.01)

    # one request, recorded
    def call(self, s, kind, node, method, path, body=None, key=None, value=None, client=0,
             write=True, headers=None):
        rec = {"kind": kind, "node": node, "key": key, "value": value, "client": client,
               "t0": now()}
        try:
            if method == "GET":
                r = s.get(self.cc.url(node, path), timeout=(1.0, self.timeout), headers=headers)
            else:
                r = s.post(self.cc.url(node, path), data=json.dumps(body) if body is not None
                           else None, timeout=(1.0, self.timeout), headers=headers)
            rec["t1"] = now()
            rec["http"] = r.status_code
            rec["status"] = classify_write(r) if write else (
                "ok" if r.status_code in (200, 404) else "info")
        except requests.RequestException as e:
            rec["t1"] = now()
            rec["http"] = None
            rec["err"] = type(e).__name__
            rec["status"] = exc_status(e) if write else "info"
            r = None
        with self.lock:
            k = (kind, rec["status"])
            self.counts[k] = self.counts.get(k, 0) + 1
            if rec["status"] != "ok":
                k = (rec["status"], rec["http"] or rec["err"])
                self.answers[k] = self.answers.get(k, 0) + 1
        return rec, r

    def op_kv_w(self, s, rng, c, seq, node):
        key = rng.choice(self.KV_KEYS)
        val = f"c{c}-{seq}"
        rec, r = self.call(s, "kv_w", node, "POST", "/kv/set",
                           {"key": key, "value": base64.b64encode(val.encode()).decode()},
                           key=key, value=val, client=c)
        self.hist.add(rec)

    def op_kv_big(self, s, rng, c, seq, node):
        key = rng.choice(self.BIG_KEYS)
        val = (f"c{c}-{seq}-" * 4000)[:60000]
        rec, r = self.call(s, "kv_w", node, "POST", "/kv/set",
                           {"key": key, "value": base64.b64encode(val.encode()).decode()},
                           key=key, value=f"c{c}-{seq}", client=c)
        self.hist.add(rec)

    def read_kv(self, s, c, node, key, kind="kv_r"):
        rec, r = self.call(s, kind, node, "GET", f"/kv/get/{key}", key=key, client=c,
                           write=False)
        if rec["status"] == "ok":
            if r.status_code == 404:
                rec["value"] = None
            else:
                v = base64.b64decode(r.json()["value"]).decode()
                if key.startswith("big-"):
                    v = v[:v.index("-", v.index("-") + 1)]
                rec["value"] = v
        return rec

    def op_kv_r(self, s, rng, c, seq, node):
        key = rng.choice(self.KV_KEYS + (self.BIG_KEYS if self.big.is_set() else []))
        self.hist.add(self.read_kv(s, c, node, key))

    def op_cfg_w(self, s, rng, c, seq, node):
        key = rng.choice(self.CFG_KEYS)
        val = f"c{c}-{seq}"
        rec, r = self.call(s, "cfg_w", node, "POST", "/config/set", {"key": key, "value": val},
                           key=key, value=val, client=c)
        self.hist.add(rec)

    def read_cfg(self, s, c, node, key):
        rec, r = self.call(s, "cfg_r", node, "GET", f"/config/get?key={key}", key=key, client=c,
                           write=False)
        if rec["status"] == "ok":
            rec["value"] = None if r.status_code == 404 else r.json()
        return rec

    def op_cfg_r(self, s, rng, c, seq, node):
        self.hist.add(self.read_cfg(s, c, node, rng.choice(self.CFG_KEYS)))

    def op_bid(self, s, rng, c, seq, node):
        count = rng.choice((1, 1, 7, 100, 1000, 100000))
        rec, r = self.call(s, "bid", node, "POST", "/bid/alloc", {"count": count}, client=c)
        rec["value"] = count
        self.hist.add(rec)
        if rec["status"] == "ok":
            o = r.json()
            rec["out"] = (o["start_bid"], o["end_bid"])
            if o["end_bid"] - o["start_bid"] + 1 != count:
                self.anom.add("ids", f"/bid/alloc of {count} answered {o}")
            with self.lock:
                self.acked_ranges.append((o["start_bid"], o["end_bid"], rec["id"]))

    def op_diskid(self, s, rng, c, seq, node):
        rec, r = self.call(s, "diskid", node, "POST", "/diskid/alloc", None, client=c)
        self.hist.add(rec)
        if rec["status"] == "ok":
            rec["out"] = r.json()["disk_id"]
            with self.lock:
                self.acked_diskids.append((rec["out"], rec["id"]))
        return rec

    def op_node_add(self, s, rng, c, seq, node):
        """A blobnode host registers its node (again: the same id every time)."""
        host = f"http://127.0.1.{1 + c}:{8000 + rng.randint(0, 9)}"
        body = {"cluster_id": 1, "disk_type": 1, "idc": "z0", "rack": f"r{c % 2}",
                "host": host, "role": 1, "node_set_id": 0, "status": 0}
        rec, r = self.call(s, "node_add", node, "POST", "/node/add", body, key=host, client=c)
        self.hist.add(rec)
        if rec["status"] != "ok":
            return
        nid = r.json()["node_id"]
        with self.lock:
            old = self.acked_nodes.setdefault(host, nid)
            if old != nid:
                self.anom.add("ids", f"/node/add of {host} answered node {nid} after {old}")
            dup = [h for h, i in self.acked_nodes.items() if i == nid and h != host]
        if dup:
            self.anom.add("ids", f"node id {nid} answered for {host} and {dup}")

    def op_disk_add(self, s, rng, c, seq, node):
        rec = self.op_diskid(s, rng, c, seq, node)
        if rec["status"] != "ok":
            return
        did = rec["out"]
        host, path = f"http://127.0.0.1:{7000 + c}", f"/chaos/{did}"
        with self.lock:
            nodes = sorted(self.acked_nodes.items())
        node_id = 0
        if nodes and rng.random() < 0.5:  # half of them under a node (the node's host wins)
            host, node_id = rng.choice(nodes)
        # read-only: never chosen for a volume (no blobnode serves these hosts)
        body = {"cluster_id": 1, "idc": "z0", "rack": f"r{c % 2}", "host": host, "path": path,
                "status": 1, "readonly": True,
                "create_time": "2024-01-01T00:00:00Z", "last_update_time": "2024-01-01T00:00:00Z",
                "disk_id": did, "used": 0, "free": TIB, "size": TIB, "max_chunk_cnt": 0,
                "free_chunk_cnt": 0, "used_chunk_cnt": 0, "node_id": node_id}
        rec, r = self.call(s, "disk_add", rng.randint(1, self.cc.n), "POST", "/disk/add", body,
                           key=did, client=c)
        self.hist.add(rec)
        with self.lock:
            if rec["status"] == "ok":
                self.acked_disks[did] = (host, path)
                if node_id:
                    self.disk_nodes[did] = node_id
            elif rec["status"] == "info":
                self.maybe_disks.add(did)

    def op_disk_hb(self, s, rng, c, seq, node):
        with self.lock:
            known = list(self.acked_disks)
        if not known:
            return
        ids = rng.sample(known, min(len(known), rng.randint(1, 5)))
        body = {"disks": [{"disk_id": d, "used": rng.randint(0, 1 << 30), "free": TIB // 2,
                           "size": TIB, "used_chunk_cnt": rng.randint(0, 10)} for d in ids]}
        rec, r = self.call(s, "disk_hb", node, "POST", "/disk/heartbeat", body, key=ids, client=c)
        self.hist.add(rec)
        if rec.get("http") == 911:
            self.anom.add("lost", f"heartbeat of acknowledged disks {ids} answered 911 (disk not "
                          f"found) at {rec['t1'] - self.hist.t_start:.2f}s from node {node}")

    def op_svc_reg(self, s, rng, c, seq, node):
        name = f"chaos-svc{c % 3}"
        host = f"http://127.0.0.{1 + c}:{10000 + seq}"
        rec, r = self.call(s, "svc_reg", node, "POST", "/service/register",
                           {"cluster_id": 1, "name": name, "host": host, "idc": "z0",
                            "timeout": 86400}, key=(name, host), client=c)
        self.hist.add(rec)
        if rec["status"] == "ok":
            with self.lock:
                self.acked_svcs[(name, host)] = "z0"

    def op_svc_hb(self, s, rng, c, seq, node):
        with self.lock:
            known = list(self.acked_svcs)
        if not known:
            return
        name, host = rng.choice(known)
        rec, r = self.call(s, "svc_hb", node, "POST", "/service/heartbeat",
                           {"name": name, "host": host}, key=(name, host), client=c)
        self.hist.add(rec)
        if rec.get("http") == 404:
            self.anom.add("lost", f"heartbeat of acknowledged service {name} {host} answered 404 "
                          f"at {rec['t1'] - self.hist.t_start:.2f}s from node {node}")

    @staticmethod
    def ip(c):
        return f"10.77.0.{c + 1}"  # each client is its own caller (X-Real-Ip)

    def op_vol_alloc(self, s, rng, c, seq, node):
        if not self.volumes_on:
            return
        ip = self.ip(c)
        rec, r = self.call(s, "vol_alloc", node, "POST", "/volume/alloc",
                           {"code_mode": EC3P3, "count": rng.randint(1, 2)}, client=c,
                           headers={"X-Real-Ip": ip})
        self.hist.add(rec)
        if rec["status"] != "ok":
            return
        got = r.json().get("alloc_volume_infos") or []
        with self.lock:
            mine = self.leased.setdefault(c, {})
            for v in got:
                if v.get("token") != f"{ip};{v['vid']}" or v.get("status") != 2:
                    self.anom.add("volumes", f"/volume/alloc for {ip} answered {v}")
                self.leases.append((v["vid"], ip, v["expire_time"], rec["id"]))
                self.volumes.add(v["vid"])
                mine[v["vid"]] = v["token"]

    def op_vol_retain(self, s, rng, c, seq, node):
        if not self.volumes_on:
            return
        ip = self.ip(c)
        with self.lock:
            mine = dict(self.leased.get(c, {}))
        if not mine:
            return
        toks = list(mine.values())
        rec, r = self.call(s, "vol_retain", node, "POST", "/volume/retain", {"tokens": toks},
                           client=c, headers={"X-Real-Ip": ip})
        self.hist.add(rec)
        if rec["status"] != "ok":
            return
        got = r.json().get("retain_vol_tokens") or []
        kept = set()
        with self.lock:
            for t in got:
                if t["token"] not in toks:
                    self.anom.add("volumes", f"/volume/retain for {ip} renewed {t}, not asked")
                    continue
                vid = int(t["token"].split(";")[1])
                self.leases.append((vid, ip, t["expire_time"], rec["id"]))
                kept.add(vid)
            # a lease that was not renewed has lapsed (or the volume is full): forget it
            self.leased[c] = {v: tok for v, tok in self.leased.get(c, {}).items()
                              if v in kept or v not in mine}

    def op_kv_once(self, s, rng, c, seq, node):
        key = f"once-{c}-{seq}"
        val = f"v{seq}-{rng.random()}"
        rec, r = self.call(s, "kv_once", node, "POST", f"/kv/set/{key}",
                           {"value": base64.b64encode(val.encode()).decode()}, key=key,
                           value=val, client=c)
        self.hist.add(rec)
        if rec["status"] == "ok":
            with self.lock:
                self.acked_once[key] = val


# ---------------------------------------------------------------------------------------------
# the nemesis


class Nemesis:
    def __init__(self, cc, work, anomalies, rng, log):
        self.cc, self.work, self.anom, self.rng, self.log = cc, work, anomalies, rng, log
        self.events = []
        self.t0 = now()
        self.removed = set()  # members removed and not yet added back
        self.counts = {}
        self.scale = 1.0  # multiplies every hold time
        self.effective = {}  # faults seen to have their effect (a new leader)
        self.ineffective = {}

    def note(self, kind, what, **kw):
        e = {"t": round(now() - self.t0, 2), "fault": kind, "what": what}
        e.update(kw)
        self.events.append(e)
        self.log(f"[{e['t']:8.2f}] {kind}: {what}")

    def hold(self, lo, hi):
        time.sleep(self.rng.uniform(lo, hi) * self.scale)

    def expect_new_leader(self, kind, old, among, timeout=10):
        """Check that the fault did what it is for: a leader other than `old` among `among`."""
        end = now() + timeout
        while now() < end:
            for i in among:
                try:
                    st = self.cc.stat(i, timeout=1)
                except (requests.RequestException, ValueError, KeyError):
                    continue
                if st["raftState"] == "StateLeader" and i != old:
                    self.effective[kind] = self.effective.get(kind, 0) + 1
                    return i
            time.sleep(0.1)
        self.note(kind, f"no new leader among {among} within {timeout}s (fault ineffective?)")
        self.ineffective[kind] = self.ineffective.get(kind, 0) + 1
        try:  # what each node thinks, and what went over the links meanwhile
            views = {}
            for i in range(1, self.cc.n + 1):
                try:
                    st = self.cc.stat(i, timeout=1)
                    views[i] = (st["raftState"], st["term"], st["leader"], st["commit"])
                except (requests.RequestException, ValueError, KeyError):
                    views[i] = None
            self.log(f"    raft views: {views}")
            self.log(f"    links: {self.cc.net.stats()}")
        except Exception:
            pass
        return 0

    def leader_or_any(self):
        lid = self.cc.leader()
        return lid or self.rng.choice(range(1, self.cc.n + 1))

    def others(self, x):
        return [i for i in range(1, self.cc.n + 1) if i != x]

    def restart(self, i):
        err = self.cc.start(i)
        if err:
            self.anom.add("restart", f"node {i} did not come back: {err[:2000]}")

    def recover(self, why, timeout=40):
        """Wait for a ready leader; a cluster that cannot elect one after healing is a finding."""
        for i, rc in self.cc.reap():
            self.note("exit", f"node {i} exited on its own with status {rc}")
            self.anom.add("crash", f"node {i} exited with status {rc} (during {why})")
            self.restart(i)
        lid = self.cc.wait_leader(timeout)
        if not lid:
            self.anom.add("liveness", f"no ready leader {timeout}s after healing {why}")
        return lid

    def run_fault(self, kind):
        self.counts[kind] = self.counts.get(kind, 0) + 1
        getattr(self, "f_" + kind)()

    # -- processes
    def f_kill_leader(self):
        lid = self.leader_or_any()
        self.note("kill_leader", f"kill -9 node {lid}")
        self.cc.kill(lid)
        self.expect_new_leader("kill_leader", lid, self.others(lid))
        self.hold(1, 5)
        self.restart(lid)
        self.recover("kill_leader")

    def f_kill_follower(self):
        lid = self.cc.leader()
        v = self.rng.choice(self.others(lid) if lid else list(range(1, self.cc.n + 1)))
        self.note("kill_follower", f"kill -9 node {v}")
        self.cc.kill(v)
        self.hold(1, 5)
        self.restart(v)
        self.recover("kill_follower")

    def f_kill_majority(self):
        k = self.cc.n // 2 + 1
        vs = self.rng.sample(range(1, self.cc.n + 1), k)
        self.note("kill_majority", f"kill -9 nodes {sorted(vs)}")
        for v in vs:
            self.cc.kill(v)
        self.hold(1, 4)
        for v in self.rng.sample(vs, len(vs)):
            self.restart(v)
            time.sleep(self.rng.uniform(0, 0.5))
        self.recover("kill_majority")

    def f_kill_all(self):
        self.note("kill_all", "kill -9 every node, then restart them all")
        for v in range(1, self.cc.n + 1):
            self.cc.kill(v)
        self.hold(0.2, 2)
        for v in range(1, self.cc.n + 1):
            self.restart(v)
        self.recover("kill_all")

    def f_pause_leader(self):
        lid = self.leader_or_any()
        self.note("pause_leader", f"SIGSTOP node {lid}")
        self.cc.pause(lid)
        self.expect_new_leader("pause_leader", lid, self.others(lid))
        self.hold(1, 4)
        self.cc.resume(lid)
        self.note("pause_leader", f"SIGCONT node {lid}")
        self.recover("pause_leader")

    def f_pause_follower(self):
        lid = self.cc.leader()
        v = self.rng.choice(self.others(lid) if lid else list(range(1, self.cc.n + 1)))
        self.note("pause_follower", f"SIGSTOP node {v}")
        self.cc.pause(v)
        self.hold(1, 5)
        self.cc.resume(v)
        self.recover("pause_follower")

    # -- raft operations
    def post(self, node, path, body, timeout=10):
        try:
            r = requests.post(self.cc.url(node, path), data=json.dumps(body), timeout=timeout)
            return r.status_code, r.text[:200]
        except requests.RequestException as e:
            return None, type(e).__name__

    def f_transfer_storm(self):
        n = self.rng.randint(4, 10)
        self.note("transfer_storm", f"{n} leadership transfers")
        for _ in range(n):
            target = self.rng.randint(1, self.cc.n)
            via = self.rng.choice(self.cc.usable() or [1])
            self.post(via, "/leadership/transfer", {"peer_id": target}, timeout=5)
            time.sleep(self.rng.uniform(0.1, 1.0))
        self.recover("transfer_storm")

    def member_remove(self, wipe):
        kind = "member_wipe_readd" if wipe else "member_readd"
        lid = self.cc.wait_leader(20)
        if not lid:
            self.note(kind, "skipped: no leader")
            return
        v = self.rng.choice(self.others(lid))
        code, text = self.post(lid, "/member/remove", {"peer_id": v}, timeout=20)
        self.note(kind, f"remove node {v} via leader {lid}: {code} {text}")
        if code != 200:
            self.recover(kind)
            if code is None:  # unknown outcome: make sure it is back below
                self.removed.add(v)
            return
        self.removed.add(v)
        self.hold(1, 4)
        if wipe:
            self.cc.kill(v)
            d = self.cc.c.data_dir(v)
            for name in os.listdir(d):
                p = os.path.join(d, name)
                if os.path.isdir(p):
                    shutil.rmtree(p)
                else:
                    os.unlink(p)
            # a node that is not in its own peers map starts empty and waits to be added; it
            # announces the raft address of its learners entry (the proxy's, which it is added
            # with: raft answers peers at the address they announce), while no peers means no
            # bootstrap
            cfg = self.cc.c.configs[v]
            sc = cfg["raft_config"]["server_config"]
            sc["peers"] = {}
            sc["learners"] = {str(v): self.cc.proxy_addr(v)}
            self.cc.c.write_config(v)
            self.restart(v)
        self.readd(v, kind)
        self.recover(kind)

    def readd(self, v, kind):
        end = now() + 60
        while now() < end:
            lid = self.cc.wait_leader(20)
            if not lid:
                continue
            code, text = self.post(lid, "/member/add",
                                   {"peer_id": v, "host": self.cc.proxy_addr(v), "member_type": 2,
                                    "node_host": self.cc.c.http(v)}, timeout=30)
            self.note(kind, f"add node {v} back via leader {lid}: {code} {text}")
            if code in (200, 910):
                # 910: already a member (an earlier attempt went through)
                try:
                    if self.cc.voters(lid).get(v):
                        self.removed.discard(v)
                        return True
                except (requests.RequestException, ValueError, KeyError):
                    pass
            time.sleep(1)
        self.anom.add("liveness", f"could not add node {v} back within 60 s")
        return False

    def f_member_readd(self):
        self.member_remove(wipe=False)

    def f_member_wipe_readd(self):
        self.member_remove(wipe=True)

    # -- the network
    def f_partition_isolate_leader(self):
        lid = self.leader_or_any()
        mode = self.rng.choice(("drop", "cut"))
        self.note("partition_isolate_leader", f"isolate node {lid} ({mode})")
        self.cc.net.partition([[lid], self.others(lid)], mode)
        self.expect_new_leader("partition_isolate_leader", lid, self.others(lid))
        self.hold(1, 6)
        self.cc.net.heal()
        self.recover("partition_isolate_leader")

    def f_partition_split(self):
        nodes = list(range(1, self.cc.n + 1))
        self.rng.shuffle(nodes)
        k = self.rng.randint(1, self.cc.n // 2)
        groups = [nodes[:k], nodes[k:]]
        mode = self.rng.choice(("drop", "cut"))
        self.note("partition_split",
                  f"partition {sorted(groups[0])} | {sorted(groups[1])} ({mode})")
        self.cc.net.partition(groups, mode)
        self.hold(2, 8)
        self.cc.net.heal()
        self.recover("partition_split")

    def f_partition_bridge(self):
        nodes = list(range(1, self.cc.n + 1))
        self.rng.shuffle(nodes)
        bridge = nodes[0]
        rest = nodes[1:]
        half = len(rest) // 2
        a, b = rest[:half], rest[half:]
        self.note("partition_bridge", f"{sorted(a)} <-> {bridge} <-> {sorted(b)}")
        for x in a:
            for y in b:
                self.cc.net.set(x, y, "drop")
                self.cc.net.set(y, x, "drop")
        self.hold(3, 8)
        self.cc.net.heal()
        self.recover("partition_bridge")

    def f_partition_oneway(self):
        lid = self.leader_or_any()
        if self.rng.random() < 0.5:
            self.note("partition_oneway", f"node {lid} (leader) cannot send to anyone")
            for o in self.others(lid):
                self.cc.net.set(lid, o, "drop")
            self.expect_new_leader("partition_oneway", lid, self.others(lid))
        else:
            self.note("partition_oneway", f"nobody can send to node {lid} (leader)")
            for o in self.others(lid):
                self.cc.net.set(o, lid, "drop")
            self.expect_new_leader("partition_oneway", lid, self.others(lid))
        self.hold(2, 6)
        self.cc.net.heal()
        self.recover("partition_oneway")

    def f_link_flap(self):
        n = self.rng.randint(5, 15)
        self.note("link_flap", f"{n} rounds of random cut links")
        for _ in range(n):
            a, b = self.rng.sample(range(1, self.cc.n + 1), 2)
            self.cc.net.set(a, b, "cut")
            time.sleep(self.rng.uniform(0.1, 0.6))
            self.cc.net.set(a, b, "pass")
        self.cc.net.heal()
        self.recover("link_flap")

    def f_net_delay(self):
        d = self.rng.choice((20, 50, 100, 200))
        self.note("net_delay", f"every link delayed {d} ms (+ up to {d} ms jitter)")
        for a in range(1, self.cc.n + 1):
            for b in range(1, self.cc.n + 1):
                if a != b:
                    self.cc.net.set(a, b, "delay", delay_ms=d, jitter_ms=d)
        self.hold(3, 8)
        self.cc.net.heal()
        self.recover("net_delay")

    # -- storage
    def f_disk_full(self):
        v = self.cc.disk_node
        if v is None:
            self.note("disk_full", f"skipped: {self.cc.disk_skip or 'no tmpfs data directory'}")
            return
        filler = os.path.join(self.cc.mounted, "filler")
        self.note("disk_full", f"fill the data directory of node {v} and keep it full")
        self.work.big.set()  # large kv values: the log needs new segments soon
        stop = threading.Event()
        written = [0]

        def fill():  # take every byte the node frees (compaction deletes old segments)
            with open(filler, "ab", buffering=0) as f:
                chunk = b"\0" * 65536
                while not stop.is_set():
                    try:
                        f.write(chunk)
                        written[0] += len(chunk)
                    except OSError:
                        time.sleep(0.02)

        t = threading.Thread(target=fill, daemon=True)
        t.start()
        self.hold(5, 12)
        alive = self.cc.running(v)
        self.work.big.clear()
        stop.set()
        t.join()
        try:
            os.unlink(filler)
        except OSError:
            pass
        self.note("disk_full", f"freed {written[0] >> 20} MiB on node {v} (it was "
                  f"{'running' if alive else 'down'}); kill -9 and restart it")
        for i, rc in self.cc.reap():
            self.note("exit", f"node {i} exited on its own with status {rc} while its disk "
                      "was full" if i == v else f"node {i} exited with status {rc}")
            if i != v or rc != 1:
                self.anom.add("crash", f"node {i} exited with status {rc} during disk_full")
        self.cc.kill(v)
        self.restart(v)
        self.recover("disk_full")

    def f_io_error(self):
        v = self.cc.faultio_node
        if v is None:
            self.note("io_error", "skipped: the fault-injection library is not built")
            return
        flag = self.cc.fault_flag(v)
        mode = self.rng.choice(("EIO", "ENOSPC"))
        self.note("io_error", f"writes and fsyncs in node {v}'s data directory fail with {mode}")
        with open(flag, "w") as f:
            f.write(mode)
        self.hold(3, 8)
        os.unlink(flag)
        for i, rc in self.cc.reap():
            self.note("exit", f"node {i} exited on its own with status {rc}")
            if i != v or rc != 1:
                self.anom.add("crash", f"node {i} exited with status {rc} during io_error")
        self.note("io_error", f"errors off; kill -9 and restart node {v}")
        self.cc.kill(v)
        self.restart(v)
        self.recover("io_error")

    # -- the simulated blobnodes (every chunk call of volume creation, lock and unlock)
    def f_blobnodes_down(self):
        p = getattr(self.cc, "sim", None)
        if p is None:
            self.note("blobnodes_down", "skipped: no simulated blobnodes")
            return
        if self.rng.random() < 0.5:
            self.note("blobnodes_down", "SIGSTOP the simulated blobnodes")
            p.send_signal(signal.SIGSTOP)
            self.hold(2, 6)
            p.send_signal(signal.SIGCONT)
        else:
            self.note("blobnodes_down", "kill -9 the simulated blobnodes, then restart them")
            p.kill()
            p.wait()
            self.cc.sim_log.close()
            self.hold(1, 4)
            self.cc.start_sim()
        self.recover("blobnodes_down")

    # -- the end
    def heal_all(self):
        self.cc.net.heal()
        for i in list(self.cc.paused):
            self.cc.resume(i)
        for i, rc in self.cc.reap():
            self.note("exit", f"node {i} exited on its own with status {rc}")
            self.anom.add("crash", f"node {i} exited with status {rc}")
        for i in range(1, self.cc.n + 1):
            if not self.cc.running(i):
                self.restart(i)
        for v in sorted(self.removed):
            self.readd(v, "heal")


# ---------------------------------------------------------------------------------------------
# checks


def check_registers(hist, anomalies):
    """Linearizability of every kv and config key; returns {key: (ops checked, verdict)}."""
    per_key = {}
    for o in hist.ops:
        if o["kind"] in ("kv_w", "kv_r", "cfg_w", "cfg_r", "final_r"):
            per_key.setdefault(o["key"], []).append(o)
    results = {}
    for key, recs in sorted(per_key.items()):
        ops = [linearize.Op("w" if r["kind"].endswith("_w") else "r", r.get("value"), r["t0"],
                            r["t1"], r["status"], ref=r["id"]) for r in recs]
        ok, why = linearize.check(ops)
        results[key] = (len(ops), ok)
        if ok is False:
            anomalies.add("linearizability", f"key {key}: {why}")
        elif ok is None:
            anomalies.add("checker", f"key {key}: {why}")
    return results


def check_ids(work, anomalies):
    ranges = sorted((a, b) for a, b, _ in work.acked_ranges)
    for (a1, b1), (a2, b2) in zip(ranges, ranges[1:]):
        if a2 <= b1:
            anomalies.add("ids", f"/bid/alloc ranges overlap: [{a1},{b1}] and [{a2},{b2}]")
    for a, b in ranges:
        if a < 1 or b < a:
            anomalies.add("ids", f"/bid/alloc range [{a},{b}] is malformed")
    ids = sorted(i for i, _ in work.acked_diskids)
    for x, y in zip(ids, ids[1:]):
        if x == y:
            anomalies.add("ids", f"/diskid/alloc handed out {x} twice")
    return len(ranges), len(ids)


def check_leases(work, anomalies):
    """No two callers ever hold a lease on the same volume at the same time. A lease ends at
    the leader's proposal time plus RETAIN_S (its `expire_time`), so it covers
    [expire_time - RETAIN_S, expire_time]; only acknowledged leases count (one whose
    acknowledgement was lost can only make the true lease longer)."""
    span = RETAIN_S * 10 ** 9
    by_vid = {}
    for vid, ip, end, op in work.leases:
        by_vid.setdefault(vid, []).append((end - span, end, ip, op))
    for vid, ls in by_vid.items():
        ls.sort()
        for i, (a0, a1, aip, aop) in enumerate(ls):
            for b0, b1, bip, bop in ls[i + 1:]:
                if b0 >= a1:
                    break
                if bip != aip:
                    anomalies.add("volumes", f"volume {vid} leased to {aip} until {a1} (op {aop}) "
                                  f"and to {bip} from {b0} (op {bop}): {(a1 - b0) / 1e6:.1f} ms "
                                  "of overlap")
    return len(work.leases), len(by_vid)


def final_state_checks(cc, work, hist, anomalies, lid):
    """Acknowledged writes present, read through the leader and, stale, on every node."""
    s = requests.Session()
    for key in Workload.KV_KEYS + Workload.BIG_KEYS:
        hist.add(work.read_kv(s, -1, lid, key, kind="final_r"))
    for key in Workload.CFG_KEYS:
        rec = work.read_cfg(s, -1, lid, key)
        rec["kind"] = "final_r"
        hist.add(rec)
    for i in range(1, cc.n + 1):
        kvs = {}
        marker = ""
        while True:  # every write-once key, a page at a time
            r = s.get(cc.url(i, f"/kv/list?prefix=once-&count=1000&marker={marker}&stale=true"),
                      timeout=20)
            page = r.json()
            for kv in page["kvs"] or []:
                kvs[kv["key"]] = base64.b64decode(kv["value"]).decode()
            marker = page["marker"]
            if not marker:
                break
        missing = [k for k, v in sorted(work.acked_once.items()) if kvs.get(k) != v]
        if missing:
            anomalies.add("lost", f"node {i}: {len(missing)} acknowledged kv writes missing or "
                          f"wrong, e.g. {missing[:5]}")
        disks, under = {}, {}
        marker = 0
        while True:
            r = s.get(cc.url(i, f"/disk/list?count=200&marker={marker}&stale=true"), timeout=20)
            page = r.json()
            for d in page["disks"] or []:
                disks[d["disk_id"]] = (d["host"], d["path"])
                under[d["disk_id"]] = d.get("node_id", 0)
            if not page["disks"]:
                break
            marker = page["marker"]
        missing = [d for d, hp in sorted(work.acked_disks.items()) if disks.get(d) != hp]
        if missing:
            anomalies.add("lost", f"node {i}: {len(missing)} acknowledged disks missing, e.g. "
                          f"{missing[:5]}")
        wrong = [d for d, n in sorted(work.disk_nodes.items()) if under.get(d) != n]
        if wrong:
            anomalies.add("lost", f"node {i}: {len(wrong)} acknowledged disks not under the node "
                          f"they were added to, e.g. {wrong[:5]}")
        for host, nid in sorted(work.acked_nodes.items()):
            r = s.get(cc.url(i, f"/node/info?node_id={nid}&stale=true"), timeout=10)
            if r.status_code != 200 or r.json().get("host") != host:
                anomalies.add("lost", f"node {i}: acknowledged blobnode {nid} ({host}) answers "
                              f"{r.status_code} {r.text[:120]}")
                break
        vols = set()
        marker = 0
        while True:
            r = s.get(cc.url(i, f"/volume/list?count=500&marker={marker}&stale=true"), timeout=20)
            if r.status_code == 404:  # a build without volumes
                break
            page = r.json()
            if not page["volumes"]:
                break
            vols.update(v["vid"] for v in page["volumes"])
            marker = page["marker"]
        missing = sorted(work.volumes - vols)
        if missing:
            anomalies.add("lost", f"node {i}: {len(missing)} allocated volumes missing, e.g. "
                          f"{missing[:5]}")
        r = s.get(cc.url(i, "/service/list?stale=true"), timeout=10)
        have = {(n["name"], n["host"]) for n in (r.json().get("nodes") or [])}
        missing = [k for k in work.acked_svcs if k not in have]
        if missing:
            anomalies.add("lost", f"node {i}: {len(missing)} acknowledged services missing, e.g. "
                          f"{missing[:5]}")
    # ids handed out later are above every acknowledged one
    r = s.post(cc.url(lid, "/bid/alloc"), data=json.dumps({"count": 1}), timeout=10)
    if r.status_code == 200 and work.acked_ranges:
        top = max(b for _, b, _ in work.acked_ranges)
        if r.json()["start_bid"] <= top:
            anomalies.add("ids", f"a /bid/alloc after the run returned {r.json()} at or below "
                          f"the acknowledged {top}")


def converge(cc, anomalies, what, timeout=90):
    """Every node reaches the same applied index with the same state digest."""
    end = now() + timeout
    last = None
    while now() < end:
        try:
            lid = cc.leader()
            if lid:
                commit = cc.stat(lid)["commit"]
                ds = {i: cc.digest(i) for i in range(1, cc.n + 1)}
                applied = {d[0] for d in ds.values()}
                if len(applied) == 1 and min(applied) >= commit:
                    crcs = {d[1] for d in ds.values()}
                    if len(crcs) == 1:
                        return ds
                    last = ds
                    time.sleep(1)
                    ds2 = {i: cc.digest(i) for i in range(1, cc.n + 1)}
                    if ds2 == ds:  # stable and still different
                        anomalies.add("digest", f"{what}: nodes at the same applied index have "
                                      f"different states: " + ", ".join(
                                          f"node {i}: index {a} crc {c:08x} ({n} bytes)"
                                          for i, (a, c, n) in sorted(ds.items())))
                        return ds
                last = ds
        except (requests.RequestException, ValueError, KeyError):
            pass
        time.sleep(0.3)
    anomalies.add("liveness", f"{what}: nodes did not converge within {timeout}s: {last}; "
                  f"{replication_view(cc)}")
    return last


def replication_view(cc):
    """What the leader knows of each member's replication (for a liveness anomaly)."""
    try:
        lid = cc.leader()
        if not lid:
            return "no leader"
        peers = cc.stat(lid).get("peers", [])
        return f"leader {lid} sees " + "; ".join(
            f"{p.get('id')}: match {p.get('match')} next {p.get('next')} {p.get('state')}"
            f"{' paused' if p.get('paused') else ''}"
            f"{' snapshot ' + str(p.get('pendingSnapshot')) if p.get('pendingSnapshot') else ''}"
            f"{'' if p.get('active') else ' inactive'}" for p in peers)
    except (requests.RequestException, ValueError, KeyError) as e:
        return f"the leader's view is unavailable: {e}"


# ---------------------------------------------------------------------------------------------
# a campaign


def start_volumes(cc, work, log, timeout=60):
    """Start the simulated fleet and wait until it registered and the leader built a pool of
    idle volumes; then the clients start allocating. Returns what the report says about it."""
    err = cc.start_sim()
    if err:
        return f"skipped: {err}"
    end = now() + timeout
    while now() < end and cc.sim_registered() < cc.sim_disks:
        time.sleep(0.2)
    while now() < end:
        lid = cc.leader()
        try:
            if lid and requests.get(cc.url(lid, "/stat"), timeout=2).json()[
                    "volume_stat"]["can_alloc_volume"] > 0:
                work.volumes_on = True
                log(f"blobnode fleet of {cc.sim_disks} disks registered; volumes allocatable")
                return f"{cc.sim_disks} simulated disks, code mode EC3P3, leases of {RETAIN_S} s"
        except (requests.RequestException, ValueError, KeyError):
            pass
        time.sleep(0.2)
    return "skipped: no allocatable volume within 60 s"


def quiesce_volumes(cc, work, anomalies, log, timeout=60):
    """Before comparing states: let every lease lapse and the pool stop growing, then stop the
    blobnodes, so that no leader job changes the state any more."""
    if getattr(cc, "sim", None) is None:
        return
    end = now() + timeout
    last, since = None, now()
    while now() < end:
        try:
            lid = cc.leader()
            vs = requests.get(cc.url(lid, "/stat"), timeout=2).json()["volume_stat"]
            key = (vs["total_volume"], vs["active_volume"])
            if key != last:
                last, since = key, now()
            elif vs["active_volume"] == 0 and now() - since > 3:
                break
        except (requests.RequestException, ValueError, KeyError, TypeError):
            pass
        time.sleep(0.3)
    else:
        log(f"volumes did not settle within {timeout}s ({last})")
    rc = cc.stop_sim()
    if rc not in (0, None):
        anomalies.add("crash", f"blobnode-sim exited with status {rc}")


# The short slice of `make test`: one of each kind of fault that has found bugs or guards a
# fix, in an order the seed shuffles, with hold times halved.
CI_SCHEDULE = ("kill_leader", "partition_isolate_leader", "pause_leader", "member_readd",
               "io_error", "partition_oneway", "kill_majority", "transfer_storm",
               "blobnodes_down")


def run_campaign(seed=1, duration=60, nodes=3, workdir=None, schedule=None, clients=6,
                 report=None, quiet=False, keep=False, faults=None, faultio=None, scale=1.0):
    """Runs one campaign and returns its result dict (see write_report)."""
    rng = random.Random(seed)
    made_dir = workdir is None
    workdir = workdir or tempfile.mkdtemp(prefix=f"cmchaos-{seed}-")
    os.makedirs(workdir, exist_ok=True)
    logf = open(os.path.join(workdir, "chaos.log"), "a")

    def log(msg):
        logf.write(msg + "\n")
        logf.flush()
        if not quiet:
            print(msg, flush=True)

    if faultio is None:
        cand = os.path.join(ROOT, BUILD, "tests", "libfaultio.so")
        faultio = cand if os.path.exists(cand) else None
    anomalies = Anomalies()
    hist = History()
    cc = ChaosCluster(workdir, nodes, disk_node=nodes, faultio=faultio)
    res = {"seed": seed, "duration": duration, "nodes": nodes, "workdir": workdir,
           "binary": cc.c.binary, "disk_fault": cc.disk_skip or "tmpfs data directory on node "
           f"{cc.disk_node}", "io_fault": "preloaded on node %s" % cc.faultio_node
           if faultio else "skipped: libfaultio.so not built"}
    t_start = time.time()
    nem = None
    work = None
    try:
        cc.start_all()
        lid = cc.wait_leader(30)
        if not lid:
            raise RuntimeError("the cluster did not elect a leader")
        log(f"cluster of {nodes} up in {workdir}, leader {lid}; seed {seed}, {duration}s")
        work = Workload(cc, hist, anomalies, seed, clients=clients)
        res["volumes"] = start_volumes(cc, work, log)
        nem = Nemesis(cc, work, anomalies, rng, log)
        nem.scale = scale
        work.start()
        deadline = now() + duration
        kinds = list(faults or FAULTS)
        sched = list(schedule) if schedule else None
        if sched:
            rng.shuffle(sched)
        time.sleep(1.0)
        while now() < deadline:
            if sched is not None:
                if not sched:
                    break
                kind = sched.pop(0)
            else:
                kind = rng.choice(kinds)
            nem.run_fault(kind)
            time.sleep(rng.uniform(0.3, 1.5))
        if sched:
            log(f"time is up; faults not run: {sched}")
        log("healing: network, paused and stopped nodes, removed members")
        nem.heal_all()
        time.sleep(1.0)
        work.finish()
        quiesce_volumes(cc, work, anomalies, log)
        lid = cc.wait_leader(40)
        if not lid:
            anomalies.add("liveness", "no leader after healing everything")
        else:
            ds = converge(cc, anomalies, "after healing")
            res["digest"] = {i: f"{a}:{c:08x}" for i, (a, c, _) in (ds or {}).items()}
            final_state_checks(cc, work, hist, anomalies, lid)
            # what every node persisted is what it served: kill -9 everyone, restart, compare
            before = converge(cc, anomalies, "before the final restart")
            for i in range(1, nodes + 1):
                cc.kill(i)
            for i in range(1, nodes + 1):
                err = cc.start(i)
                if err:
                    anomalies.add("restart", f"node {i} did not restart: {err[:2000]}")
            lid = cc.wait_leader(40)
            after = converge(cc, anomalies, "after the final restart")
            if before and after:
                b = {c for _, c, _ in before.values()}
                a = {c for _, c, _ in after.values()}
                if len(b) == 1 and len(a) == 1 and b != a:
                    # the restart may have added entries (leader barrier, member addresses)
                    # but none that changes state: the digests must match
                    anomalies.add("digest", f"state after a kill -9 and restart of every node "
                                  f"differs: {before} then {after}")
        res["net"] = cc.net.stats()
    except Exception:
        anomalies.add("harness", traceback.format_exc())
    finally:
        if work is not None:
            work.finish()
        for i, rc in cc.reap():
            anomalies.add("crash", f"node {i} exited with status {rc} at the end")
        cc.shutdown()
        sans = cc.c.sanitizer_reports()
        for line in sans[:50]:
            anomalies.add("sanitizer", line)
    res["elapsed"] = round(time.time() - t_start, 1)
    res["registers"] = {k: {"ops": n, "linearizable": ok} for k, (n, ok)
                        in check_registers(hist, anomalies).items()}
    if work is not None:
        nl, nv = check_leases(work, anomalies)
        res["leases"] = {"acknowledged": nl, "volumes": nv}
        nr, nd = check_ids(work, anomalies)
        res["ids"] = {"bid_ranges": nr, "disk_ids": nd}
        res["acked"] = {"disks": len(work.acked_disks), "nodes": len(work.acked_nodes),
                        "services": len(work.acked_svcs),
                        "kv_once": len(work.acked_once), "volumes": len(work.volumes)}
        res["ops"] = {f"{k}/{s}": v for (k, s), v in sorted(work.counts.items())}
        res["answers"] = {f"{s}/{h}": v for (s, h), v in sorted(work.answers.items(),
                                                                key=lambda x: str(x))}
    res["n_ops"] = len(hist.ops)
    res["faults"] = nem.counts if nem else {}
    res["effective"] = nem.effective if nem else {}
    res["ineffective"] = nem.ineffective if nem else {}
    res["events"] = nem.events if nem else []
    res["exits"] = [{"node": i, "status": rc} for i, rc, _ in cc.exits]
    res["anomalies"] = anomalies.items
    logf.close()
    if report:
        write_report(res, report)
    if not anomalies.items and made_dir and not keep:
        shutil.rmtree(workdir, ignore_errors=True)
    return res


def write_report(res, path):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path + ".json" if not path.endswith(".json") else path, "w") as f:
        json.dump(res, f, indent=1, default=str)
    if path.endswith(".json"):
        return
    L = [f"# chaos campaign, seed {res['seed']}", "",
         f"- nodes: {res['nodes']}; asked duration {res['duration']} s; wall time "
         f"{res['elapsed']} s; binary {os.path.relpath(res['binary'], ROOT)}",
         f"- full disk: {res['disk_fault']}; write/fsync errors: {res['io_fault']}",
         f"- operations recorded: {res['n_ops']}", ""]
    L.append("## Faults injected")
    L.append("")
    for k, v in sorted(res["faults"].items()):
        eff = ""
        if k in res.get("effective", {}) or k in res.get("ineffective", {}):
            eff = (f" (a new leader followed {res['effective'].get(k, 0)} times, not "
                   f"{res['ineffective'].get(k, 0)} times)")
        L.append(f"- {k}: {v}{eff}")
    L += ["", "## Operations (kind/outcome: count)", ""]
    for k, v in res.get("ops", {}).items():
        L.append(f"- {k}: {v}")
    L += ["", "Answers that were not a success (outcome/HTTP status or exception: count): " +
          ", ".join(f"{k}: {v}" for k, v in res.get("answers", {}).items()), ""]
    L += ["", "## Checks", ""]
    for k, v in res["registers"].items():
        L.append(f"- register {k}: {v['ops']} operations, linearizable: {v['linearizable']}")
    if "ids" in res:
        L.append(f"- id ranges: {res['ids']['bid_ranges']} acknowledged /bid/alloc ranges, "
                 f"{res['ids']['disk_ids']} /diskid/alloc ids, checked pairwise disjoint")
        L.append(f"- acknowledged and checked present on every node: {res['acked']}")
    if "leases" in res:
        L.append(f"- volume leases: {res['leases']['acknowledged']} acknowledged leases on "
                 f"{res['leases']['volumes']} volumes, checked never held by two callers at once "
                 f"(volumes: {res.get('volumes')})")
    L.append(f"- state digests after healing: {res.get('digest')}")
    by_status = {}
    for e in res["exits"]:
        by_status[e["status"]] = by_status.get(e["status"], 0) + 1
    L.append("- nodes that exited on their own: " + (", ".join(
        f"{n} with status {st}" for st, n in sorted(by_status.items(), key=str)) or "none") +
        " (status 1 after a storage fault is the expected stop; anything else is an anomaly)")
    L += ["", f"## Anomalies: {len(res['anomalies'])}", ""]
    for a in res["anomalies"]:
        L.append(f"- [{a['kind']}] {a['msg']}")
    L += ["", "## Timeline", ""]
    for e in res["events"]:
        L.append(f"- {e['t']:8.2f}s {e['fault']}: {e['what']}")
    with open(path, "w") as f:
        f.write("\n".join(L) + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--duration", type=float, default=300, help="seconds of faults")
    ap.add_argument("--nodes", type=int, default=5)
    ap.add_argument("--clients", type=int, default=6)
    ap.add_argument("--faults", default="", help="comma-separated subset of: " + ",".join(FAULTS))
    ap.add_argument("--ci", action="store_true", help="run the fixed CI schedule once")
    ap.add_argument("--report", default=None)
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    a = ap.parse_args()
    faults = [f for f in a.faults.split(",") if f] or None
    for f in faults or ():
        if f not in FAULTS:
            ap.error(f"unknown fault {f}")
    res = run_campaign(seed=a.seed, duration=a.duration, nodes=a.nodes, workdir=a.workdir,
                       schedule=CI_SCHEDULE if a.ci else None, clients=a.clients,
                       report=a.report, keep=a.keep, faults=faults, scale=0.5 if a.ci else 1.0)
    print(json.dumps({k: res[k] for k in ("seed", "elapsed", "n_ops", "faults")}, default=str))
    for x in res["anomalies"]:
        print(f"ANOMALY [{x['kind']}] {x['msg']}")
    if res["anomalies"]:
        print(f"logs: {res['workdir']}")
    return 1 if res["anomalies"] else 0


if __name__ == "__main__":
    sys.exit(main())
