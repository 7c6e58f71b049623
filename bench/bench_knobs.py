#!/usr/bin/python3
"""What each mechanism buys, and how writes scale with the cluster size.

  - group commit: max_batch_entries 1024 (default) vs 1 (one raft proposal per command)
  - read batching: max_reads_per_barrier 0 (default: every waiting read on one barrier) vs 1
  - cluster size: KV writes and linearizable reads with 1, 3 and 5 nodes

Each row is a fresh cluster; build/loadgen (or wrk, --client wrk) drives the leader.
usage: bench/bench_knobs.py [--duration 8] [--conns 64] [--client loadgen|wrk] [--build build]
"""
import argparse
import base64
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "tests", "cluster"))
from drive import load  # noqa: E402
from cmcluster import Cluster  # noqa: E402


def run(label, nodes, server_extra, args, rows):
    extra = {"raft_config": {"server_config": server_extra}} if server_extra else None
    c = Cluster(nodes=nodes, max_nodes=nodes, extra=extra, log_level="warn",
                binary=os.path.join(HERE, "..", args.build, "clustermgr"))
    try:
        c.start_all()
        lid = c.wait_leader()
        c.post(lid, "/kv/set", {"key": "bench-read-key", "value": base64.b64encode(b"v" * 64).decode()})
        url = f"http://{c.http(lid)}"
        w = load(url, "kv_set", args.conns, args.duration, args.client, args.build)
        r = load(url, "kv_get", args.conns, args.duration, args.client, args.build)
        st = c.get(lid, "/metrics").text
        rows.append((label, w, r))
        print(f"{label}: write {w['ops']:.0f}/s p99 {w['p99_ms']:.1f} ms, "
              f"read {r['ops']:.0f}/s p99 {r['p99_ms']:.1f} ms", flush=True)
        del st
    finally:
        c.shutdown()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=int, default=8)
    ap.add_argument("--conns", type=int, default=64)
    ap.add_argument("--client", choices=["loadgen", "wrk"], default="loadgen")
    ap.add_argument("--build", default=os.environ.get("CM_BUILD", "build"))
    args = ap.parse_args()
    rows = []
    run("3 nodes, defaults", 3, None, args, rows)
    run("3 nodes, no group commit (max_batch_entries 1)", 3, {"max_batch_entries": 1}, args, rows)
    run("3 nodes, one read per barrier (max_reads_per_barrier 1)", 3,
        {"max_reads_per_barrier": 1}, args, rows)
    run("1 node", 1, None, args, rows)
    run("5 nodes", 5, None, args, rows)
    print()
    print(f"| configuration ({args.conns} connections) | kv/set ops/s | p50/p99 ms | "
          "kv/get ops/s | p50/p99 ms |")
    print("|---|---|---|---|---|")
    for label, w, r in rows:
        print(f"| {label} | {w['ops']:.0f} | {w['p50_ms']:.2f} / {w['p99_ms']:.2f} | "
              f"{r['ops']:.0f} | {r['p50_ms']:.2f} / {r['p99_ms']:.2f} |")


if __name__ == "__main__":
    main()
