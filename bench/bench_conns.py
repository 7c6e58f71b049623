#!/usr/bin/python3
"""Connection scaling: write and read throughput at 64 active connections while the node holds
0, 1,000, 10,000 and 20,000 idle keep-alive connections.

A 3-node cluster on loopback (fsync on). The benchmark opens the idle connections itself against
the leader: each sends one GET /livez, reads its answer and then stays open and silent, as the
keep-alive pool of a blobnode, proxy or access node does between requests. At every level it runs
bench/loadgen with 64 connections for `--duration` seconds, `kv_set` (replicated write) and
`kv_get` (linearizable read), `--repeat` times, and reports the medians, p50/p99, the node's CPU
seconds per 1,000 requests and its RSS. At the end every idle connection must still answer a
request: the node accepted and serves all of them.

  /usr/bin/python3 bench/bench_conns.py [--idle 0,1000,10000,20000] [--duration 5] [--repeat 3]

The nodes run with http.connection_timeout_s = 600 so that the idle connections outlive the run
(the default, 30 s, closes an idle connection as any server does; a client reconnects).
"""
import argparse
import os
import shutil
import statistics
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "cluster"))
sys.path.insert(0, HERE)
from cmcluster import Cluster  # noqa: E402
from bench_etcd import proc_stat  # noqa: E402
from drive import load  # noqa: E402
from idleconns import IdlePool, raise_nofile  # noqa: E402

def log(msg):
    print(msg, file=sys.stderr, flush=True)


def node_room(pid, active):
    """How many idle connections the node can hold: its open-file limit (the node raises its soft
    limit to the hard one at start) less the files it has open, the active connections and a
    margin for raft and snapshot files."""
    limit = None
    with open(f"/proc/{pid}/limits") as f:
        for line in f:
            if line.startswith("Max open files"):
                v = line.split()[3]
                limit = None if v == "unlimited" else int(v)
    if limit is None:
        return 1 << 30
    return limit - len(os.listdir(f"/proc/{pid}/fd")) - active - 64


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--idle", default="0,1000,10000,20000")
    ap.add_argument("--conns", type=int, default=64)
    ap.add_argument("--duration", type=int, default=5)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None, help="http.threads of the nodes")
    ap.add_argument("--build", default=os.environ.get("CM_BUILD", "build"))
    args = ap.parse_args()
    levels = [int(x) for x in args.idle.split(",")]
    raise_nofile(args.conns + 1024)

    http = {"connection_timeout_s": 600, "max_connections": max(levels) + 4096}
    if args.threads:
        http["threads"] = args.threads
    c = Cluster(nodes=3, binary=os.path.join(HERE, "..", args.build, "clustermgr"),
                log_level="warn", extra={"http": http})
    idle = None
    rows = []
    try:
        log("starting clustermgr (3 nodes)...")
        c.start_all()
        lid = c.wait_leader()
        r = c.post(lid, "/kv/set", {"key": "bench-read-key", "value": "dnZ2dg=="})
        assert r.status_code == 200, r.text
        host, port = c.http(lid).split(":")
        url = f"http://{c.http(lid)}"
        pid = c.procs[lid].pid
        idle = IdlePool((host, int(port)))
        room = node_room(pid, args.conns)
        for i, level in enumerate(levels):
            if level > room:
                log(f"the node's open-file limit on this machine leaves room for {room} idle "
                    f"connections beside its own files and the {args.conns} active ones: "
                    f"level {level} is measured at {room}")
                level = levels[i] = room
            if level > len(idle):
                log(f"opening idle connections up to {level}...")
                idle.grow(level - len(idle))
            for kind, workload in (("write", "kv_set"), ("read", "kv_get")):
                runs = []
                for _ in range(args.repeat):
                    before = proc_stat(pid)
                    res = load(url, workload, args.conns, args.duration, build=args.build,
                               quiet=True)
                    after = proc_stat(pid)
                    res["cpu_per_1000"] = (after[0] - before[0]) / max(1, res["requests"]) * 1000
                    res["rss_mib"] = after[1] / 1024
                    runs.append(res)
                row = {k: statistics.median(r[k] for r in runs)
                       for k in ("ops", "p50_ms", "p99_ms", "cpu_per_1000", "rss_mib")}
                row.update(idle=level, kind=kind)
                rows.append(row)
                log(f"  idle {level:>6} {kind:5}: {row['ops']:>8.0f} ops/s, p50 "
                    f"{row['p50_ms']:.2f} ms, p99 {row['p99_ms']:.2f} ms, "
                    f"{row['cpu_per_1000']:.3f} CPU s/1k, RSS {row['rss_mib']:.0f} MiB")
        log(f"checking that all {len(idle)} idle connections are still served...")
        ok, bad = idle.check(timeout=120)
        log(f"  {ok} answered 200, {bad} did not")
        base = {r["kind"]: r["ops"] for r in rows if r["idle"] == levels[0]}
        print()
        print(f"| idle keep-alive conns | kv/set ops/s | vs {levels[0]} | p50/p99 ms | "
              f"lin. kv/get ops/s | vs {levels[0]} | p50/p99 ms | leader CPU s/1k (set/get) | "
              f"leader RSS MiB |")
        print("|---|---|---|---|---|---|---|---|---|")
        for level in levels:
            w = next(r for r in rows if r["idle"] == level and r["kind"] == "write")
            g = next(r for r in rows if r["idle"] == level and r["kind"] == "read")
            print(f"| {level:,} | {w['ops']:,.0f} | {w['ops'] / base['write'] * 100:.0f} % | "
                  f"{w['p50_ms']:.2f} / {w['p99_ms']:.2f} | {g['ops']:,.0f} | "
                  f"{g['ops'] / base['read'] * 100:.0f} % | {g['p50_ms']:.2f} / {g['p99_ms']:.2f} | "
                  f"{w['cpu_per_1000']:.3f} / {g['cpu_per_1000']:.3f} | {g['rss_mib']:.0f} |")
        print(f"\nall {len(idle)} idle connections served at the end: {ok} answered, {bad} not")
        if bad:
            sys.exit(1)
    finally:
        if idle is not None:
            idle.close()
        c.shutdown()
        shutil.rmtree(c.dir, ignore_errors=True)


if __name__ == "__main__":
    main()
