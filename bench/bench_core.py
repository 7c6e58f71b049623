#!/usr/bin/python3
"""Core benchmarks on a fresh local 3-node cluster: config writes and reads at several client
counts, and the time from kill -9 of the leader to a new leader.

usage: bench/bench_core.py [--duration 10] [--clients 1,64] [--kills 5] [--build build]
                           [--placement leader|spread|both]
Prints a table and, per run, the load generator's RESULT line (bench/drive.py).
"""
import argparse
import os
import signal
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "cluster"))
from cmcluster import Cluster  # noqa: E402
from drive import PLACEMENT_HELP, PLACEMENTS, print_spread_ratios, run_rows, targets_of  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--clients", default="1,64")
    ap.add_argument("--kills", type=int, default=5)
    ap.add_argument("--build", default=os.environ.get("CM_BUILD", "build"))
    ap.add_argument("--placement", choices=PLACEMENTS, default="both", help=PLACEMENT_HELP)
    ap.add_argument("--repeat", type=int, default=1,
                    help="runs of each row, the targets taking turns; the median is shown")
    args = ap.parse_args()
    binary = os.path.join(HERE, "..", args.build, "clustermgr")
    c = Cluster(nodes=3, binary=binary, log_level="warn")
    try:
        c.start_all()
        lid = c.wait_leader()
        follower = next(i for i in (1, 2, 3) if i != lid)
        targets = targets_of(c, args.placement, lid, follower)
        workloads = (("config/set", "config_set"), ("config/get (linearizable)", "config_get"))
        rows = run_rows(targets, workloads, [int(x) for x in args.clients.split(",")],
                        args.duration, args.repeat)
        times = []
        for k in range(args.kills):
            lid = c.wait_leader()
            t0 = time.time()
            c.kill(lid, signal.SIGKILL)
            c.wait_leader(among=[i for i in (1, 2, 3) if i != lid], exclude=(lid,), timeout=30)
            times.append(time.time() - t0)
            print(f"kill -9 of leader {lid}: new leader after {times[-1]:.2f} s", flush=True)
            c.start(lid)
            c.wait_leader()
        print()
        print("| workload | clients | ops/s | p50 ms | p99 ms | p99.9 ms | errors |")
        print("|---|---|---|---|---|---|---|")
        for name, clients, r in rows:
            print(f"| {name} | {clients} | {r['ops']:.0f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | "
                  f"{r['p999_ms']:.2f} | {int(r['errors'])} |")
        print()
        print_spread_ratios(rows)
        if times:
            print(f"\nkill -9 leader -> new leader: median {statistics.median(times):.2f} s, "
                  f"max {max(times):.2f} s over {len(times)} kills")
    finally:
        c.shutdown()


if __name__ == "__main__":
    main()
