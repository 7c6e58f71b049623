#!/usr/bin/python3
"""Side by side: clustermgr's KV store against etcd 3.4, both as 3-node clusters on loopback on
this machine, same durability (every write fsynced by a majority before the answer).

Workloads, each at every connection count, repeated and the median shown:
  - replicated small writes: our POST /kv/set  vs  etcd's JSON gateway POST /v3/kv/put
  - linearizable reads:      our GET /kv/get/k vs  etcd's POST /v3/kv/range (linearizable default)

usage: bench/bench_etcd.py [--conns 1,16,64,256] [--duration 10] [--repeat 3]
                           [--only ours|etcd] [--client loadgen|wrk] [--build build]
                           [--baseline BUILD] [--placement leader|spread|both]
Both systems are driven by the same load generator (build/loadgen, from bench/loadgen.c: exact
percentiles from every request's latency); --client wrk uses wrk and the scripts of bench/wrk/
instead (leader placement only). Placement: `leader` sends every request to the leader; `spread`
sends each connection's requests round-robin over every member, as CubeFS's clients do (two
thirds of them reach followers, which forward writes and ask the leader for read indexes; etcd's
members do the same on their side). Both by default.
Prints one RESULT line per run and a markdown table with the ratio ours/etcd per row, plus RSS
per node (idle and under load) and CPU seconds per 1,000 writes. --baseline BUILD also runs a
second clustermgr cluster from another build directory (an earlier release, built with
`make BUILD=...`) in the same run against the same etcd, and adds its columns and the ratio
ours/baseline.
"""
import argparse
import base64
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "cluster"))
from cmcluster import Cluster, pick_ports  # noqa: E402
from drive import PLACEMENT_HELP, PLACEMENTS, load, placements  # noqa: E402


def log(msg):
    print(msg, flush=True)


def http_json(url, body=None, timeout=5):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        raw = r.read()
        return json.loads(raw) if raw else None


class Etcd:
    def __init__(self, n=3):
        self.n = n
        self.base = pick_ports(n * 2)
        self.dir = tempfile.mkdtemp(prefix="etcdbench-")
        self.procs = []

    def client(self, i):
        return f"127.0.0.1:{self.base + i}"

    def peer(self, i):
        return f"127.0.0.1:{self.base + 1000 + i}"

    def start(self):
        cluster = ",".join(f"e{i}=http://{self.peer(i)}" for i in range(self.n))
        for i in range(self.n):
            log_f = open(os.path.join(self.dir, f"e{i}.log"), "wb")
            self.procs.append(subprocess.Popen([
                "etcd", "--name", f"e{i}", "--data-dir", os.path.join(self.dir, f"e{i}"),
                "--listen-client-urls", f"http://{self.client(i)}",
                "--advertise-client-urls", f"http://{self.client(i)}",
                "--listen-peer-urls", f"http://{self.peer(i)}",
                "--initial-advertise-peer-urls", f"http://{self.peer(i)}",
                "--initial-cluster", cluster, "--initial-cluster-state", "new",
                "--log-level", "error"], stdout=log_f, stderr=subprocess.STDOUT))
        end = time.time() + 30
        while time.time() < end:
            try:
                if self.leader_index() is not None:
                    return
            except Exception:
                pass
            time.sleep(0.2)
        raise RuntimeError("etcd did not elect a leader")

    def leader_index(self):
        for i in range(self.n):
            st = http_json(f"http://{self.client(i)}/v3/maintenance/status", {})
            if st and st.get("leader") and st["leader"] == st["header"]["member_id"]:
                return i
        return None

    def pids(self):
        return [p.pid for p in self.procs]

    def stop(self):
        for p in self.procs:
            p.terminate()
        for p in self.procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


def proc_stat(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / ticks
    with open(f"/proc/{pid}/status") as f:
        rss = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
    return cpu, rss  # seconds, KiB


def med_of(runs, key):
    return statistics.median(r[key] for r in runs) if runs else None


def print_tables(systems, conns, med):
    """The ours/etcd table (and ours/baseline when there is one) of one placement."""
    log("")
    log("| workload | conns | ours ops/s | etcd ops/s | ratio | ours p50/p99 ms | "
        "etcd p50/p99 ms | ours CPU s/1k | etcd CPU s/1k |")
    log("|---|---|---|---|---|---|---|---|---|")
    for kind, label in (("write", "replicated write"), ("read", "linearizable read")):
        for c in conns:
            o = med("ours", kind, c, "ops")
            e = med("etcd", kind, c, "ops")
            ratio = f"{o / e:.2f}x" if o and e else "-"

            def lat(n):
                p50, p99 = med(n, kind, c, "p50_ms"), med(n, kind, c, "p99_ms")
                return f"{p50:.2f} / {p99:.2f}" if p50 is not None else "-"

            def cpu(n):
                v = med(n, kind, c, "cpu_per_1000")
                return f"{v:.3f}" if v is not None else "-"
            log(f"| {label} | {c} | {o or 0:.0f} | {e or 0:.0f} | {ratio} | {lat('ours')} | "
                f"{lat('etcd')} | {cpu('ours')} | {cpu('etcd')} |")
    log("")
    if "base" in systems:
        log("| workload | conns | ours ops/s | baseline ops/s | ours/baseline | ours p50/p99 ms | "
            "baseline p50/p99 ms | ours CPU s/1k | baseline CPU s/1k |")
        log("|---|---|---|---|---|---|---|---|---|")
        for kind, label in (("write", "replicated write"), ("read", "linearizable read")):
            for c in conns:
                o, b = med("ours", kind, c, "ops"), med("base", kind, c, "ops")
                p = [f"{med(n, kind, c, 'p50_ms'):.2f} / {med(n, kind, c, 'p99_ms'):.2f}"
                     for n in ("ours", "base")]
                u = [f"{med(n, kind, c, 'cpu_per_1000'):.3f}" for n in ("ours", "base")]
                log(f"| {label} | {c} | {o:.0f} | {b:.0f} | {o / b:.2f}x | {p[0]} | {p[1]} | "
                    f"{u[0]} | {u[1]} |")
        log("")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--conns", default="1,16,64,256")
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--only", choices=["ours", "etcd"], default=None)
    ap.add_argument("--client", choices=["loadgen", "wrk"], default="loadgen",
                    help="load generator: bench/loadgen.c (default) or wrk with bench/wrk/*.lua")
    ap.add_argument("--build", default=os.environ.get("CM_BUILD", "build"))
    ap.add_argument("--baseline", default=None,
                    help="build directory of an earlier clustermgr to compare in the same run")
    ap.add_argument("--placement", choices=PLACEMENTS, default="both", help=PLACEMENT_HELP)
    ap.add_argument("--nodes", type=int, default=3, help="members of each cluster (3 or 5)")
    args = ap.parse_args()
    places = placements(args.placement)
    conns = [int(x) for x in args.conns.split(",")]

    systems = {}
    etcd = ours = base = None
    try:
        if args.only != "ours":
            log(f"starting etcd ({args.nodes} members)...")
            etcd = Etcd(args.nodes)
            etcd.start()
            li = etcd.leader_index()
            url = f"http://{etcd.client(li)}"
            http_json(url + "/v3/kv/put", {"key": base64.b64encode(b"bench-read-key").decode(),
                                           "value": base64.b64encode(b"v" * 64).decode()})
            systems["etcd"] = {"url": url, "pids": etcd.pids(), "write": "etcd_put",
                               "read": "etcd_range",
                               "spread": ",".join(f"http://{etcd.client(i)}" for i in range(args.nodes))}
        if args.only != "etcd":
            log(f"starting clustermgr ({args.nodes} nodes)...")
            ours = Cluster(nodes=args.nodes, binary=os.path.join(HERE, "..", args.build, "clustermgr"),
                           log_level="warn")
            ours.start_all()
            lid = ours.wait_leader()
            r = ours.post(lid, "/kv/set", {"key": "bench-read-key",
                                           "value": base64.b64encode(b"v" * 64).decode()})
            if r.status_code != 200:
                raise RuntimeError(f"clustermgr has no KV store here: {r.status_code} {r.text}")
            systems["ours"] = {"url": f"http://{ours.http(lid)}",
                               "pids": [p.pid for p in ours.procs.values()],
                               "write": "kv_set", "read": "kv_get",
                               "spread": ",".join(f"http://{ours.http(i)}" for i in ours.procs)}
        if args.baseline:
            log(f"starting the baseline clustermgr from {args.baseline} ({args.nodes} nodes)...")
            base = Cluster(nodes=args.nodes, binary=os.path.join(HERE, "..", args.baseline, "clustermgr"),
                           log_level="warn")
            base.start_all()
            bid = base.wait_leader()
            base.post(bid, "/kv/set", {"key": "bench-read-key",
                                       "value": base64.b64encode(b"v" * 64).decode()})
            systems["base"] = {"url": f"http://{base.http(bid)}",
                               "pids": [p.pid for p in base.procs.values()],
                               "write": "kv_set", "read": "kv_get",
                               "spread": ",".join(f"http://{base.http(i)}" for i in base.procs)}

        results = {}  # (system, kind, conns) -> list of runs
        usage = {}
        for name, s in systems.items():
            usage[name] = {"rss_idle_kib": [proc_stat(p)[1] for p in s["pids"]]}
        for rep in range(args.repeat):
            for pl in places:
                for c in conns:
                    for kind in ("write", "read"):
                        for name, s in systems.items():
                            before = [proc_stat(p) for p in s["pids"]]
                            url = s["url"] if pl == "leader" else s["spread"]
                            r = load(url, s[kind], c, args.duration, args.client, args.build)
                            after = [proc_stat(p) for p in s["pids"]]
                            cpu = sum(a[0] - b[0] for a, b in zip(after, before))
                            r["cpu_per_1000"] = cpu / max(1, r["requests"]) * 1000
                            r["rss_kib"] = [a[1] for a in after]
                            results.setdefault((name, kind, c, pl), []).append(r)
                            results.setdefault((name, kind, c), []).append(r)
        for pl in places:
            log("")
            log(f"clients: {'all on the leader' if pl == 'leader' else 'spread over the members'}")
            print_tables(systems, conns, lambda name, kind, c, key, pl=pl: med_of(
                results.get((name, kind, c, pl)), key))
        if places == ["leader", "spread"]:
            log("")
            log("| conns | clients | ours kv/set | etcd put | ratio | ours lin. kv/get | "
                "etcd range | ratio | ours spread/leader (set, get) |")
            log("|---|---|---|---|---|---|---|---|---|")
            for c in conns:
                for pl in places:
                    def m(name, kind, key="ops"):
                        return med_of(results.get((name, kind, c, pl)), key)

                    def cell(name, kind):
                        v = m(name, kind)
                        return f"{v:,.0f}/s, p99 {m(name, kind, 'p99_ms'):.1f} ms" if v else "-"

                    def ratio(kind):
                        o, e = m("ours", kind), m("etcd", kind)
                        return f"{o / e:.2f}x" if o and e else "-"
                    rel = "-"
                    if pl == "spread" and m("ours", "write"):
                        lw = med_of(results.get(("ours", "write", c, "leader")), "ops")
                        lr = med_of(results.get(("ours", "read", c, "leader")), "ops")
                        rel = (f"{m('ours', 'write') / lw * 100:.0f} %, "
                               f"{m('ours', 'read') / lr * 100:.0f} %")
                    log(f"| {c} | {pl} | {cell('ours', 'write')} | {cell('etcd', 'write')} | "
                        f"{ratio('write')} | {cell('ours', 'read')} | {cell('etcd', 'read')} | "
                        f"{ratio('read')} | {rel} |")

        for name in systems:
            idle = usage[name]["rss_idle_kib"]
            loaded = max((r["rss_kib"] for runs in results.values() for r in runs
                          if runs and (name, "write", conns[-1]) in results
                          and r in results[(name, "write", conns[-1])]), default=idle)
            log(f"RSS per node, {name}: idle {[round(k / 1024, 1) for k in idle]} MiB, "
                f"after {conns[-1]}-connection writes {[round(k / 1024, 1) for k in loaded]} MiB")
    finally:
        if etcd:
            etcd.stop()
        for c in (ours, base):
            if c:
                c.shutdown()
                shutil.rmtree(c.dir, ignore_errors=True)


if __name__ == "__main__":
    main()
