#!/usr/bin/python3
"""/bid/alloc, /kv/set and /kv/get on a fresh local 3-node cluster, through the leader and
through a follower (which forwards writes and asks the leader for a read index).

usage: bench/bench_services.py [--duration 10] [--clients 64] [--build build]
                               [--placement leader|spread|both]
Prints a table and, per run, the load generator's RESULT line (bench/drive.py).
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "cluster"))
sys.path.insert(0, os.path.dirname(__file__))
from drive import PLACEMENT_HELP, PLACEMENTS, print_spread_ratios, run_rows, targets_of  # noqa: E402
from cmcluster import Cluster  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--clients", default="64")
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
        assert c.post(lid, "/kv/set", {"key": "bench-read", "value": "QmVuY2htYXJr"}).status_code == 200
        targets = targets_of(c, args.placement, lid, follower)
        workloads = (("bid/alloc", "bid_alloc"), ("kv/set", "kv_set_unique"),
                     ("kv/get (linearizable)", "kv_get_one"))
        rows = run_rows(targets, workloads, [int(x) for x in args.clients.split(",")],
                        args.duration, args.repeat)
        print()
        print("| workload | clients | ops/s | p50 ms | p99 ms | p99.9 ms | errors |")
        print("|---|---|---|---|---|---|---|")
        for name, clients, r in rows:
            print(f"| {name} | {clients} | {r['ops']:.0f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | "
                  f"{r['p999_ms']:.2f} | {int(r['errors'])} |")
        print()
        print_spread_ratios(rows)
    finally:
        c.shutdown()


if __name__ == "__main__":
    main()
