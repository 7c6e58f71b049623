#!/usr/bin/python3
"""Disk benchmarks on fresh local 3-node clusters, driven by tools/blobnode-sim.

1. Heartbeat capacity: 1,000 simulated hosts x 10 disks heartbeat back to back (each host sends
   its next heartbeat as soon as the previous one is answered, at most --concurrency in flight),
   spread over every node as blobnodes do (followers forward) and, separately, all sent to the
   leader. Reports heartbeat requests/s, disks/s and latency percentiles.
2. Scale: 10,000 hosts x 20 disks (200,000 disks) register and then heartbeat every 30 s; reports
   the registration time, the RSS of every node, and the latency of /stat and of a /disk/list
   page at that size.

usage: bench/bench_disks.py [--duration 20] [--concurrency 256,1000] [--skip-scale]
                            [--scale-hosts 10000 --scale-disks 20] [--build build]
                            [--placement leader|spread|both]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import requests

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "cluster"))
from cmcluster import Cluster  # noqa: E402
from drive import PLACEMENT_HELP, PLACEMENTS, median_run, placements, spread_ratio_line  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


# The figures (bench/README.md) count the 2022 conversation: two writes per disk to register,
# nothing but disk heartbeats afterwards. The current one adds a service and a node per host and
# periodic reads, so the simulator is pinned to 2022 here.
GENERATION = ["--generation", "2022"]


def run_sim(sim, cms, hosts, disks, args, log):
    cmd = [sim, *GENERATION, "--cm", ",".join(cms), "-H", str(hosts), "-D", str(disks),
           "--no-serve", "--json"] + args
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=3600)
    with open(log, "a") as f:
        f.write(out.stderr)
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
    if out.returncode != 0 or not lines:
        raise RuntimeError(f"blobnode-sim failed ({out.returncode}):\n{out.stderr[-2000:]}")
    return json.loads(lines[-1])


def timed_get(url, n=20):
    s = requests.Session()
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        r = s.get(url, timeout=60)
        times.append((time.perf_counter() - t0) * 1000)
        r.raise_for_status()
    return statistics.median(times), max(times), len(r.content)


def capacity(args, binary, sim):
    rows = []
    c = Cluster(nodes=3, binary=binary, log_level="warn")
    try:
        c.start_all()
        lid = c.wait_leader()
        everyone = [c.http(i) for i in (1, 2, 3)]
        # register once (the sim reuses the disks it finds on the next runs)
        run_sim(sim, everyone, 1000, 10, ["-i", "30", "-d", "1"], os.path.join(c.dir, "sim.log"))
        for conc in [int(x) for x in args.concurrency.split(",")]:
            runs = {"spread": ("spread over the 3 nodes", everyone),
                    "leader": ("all to the leader", [c.http(lid)])}
            got = {}
            for rep in range(args.repeat):  # the placements take turns
                for name, cms in (runs[pl] for pl in placements(args.placement)):
                    print(f"heartbeats, {name}, {conc} in flight, {args.duration}s"
                          f"{f' (run {rep + 1} of {args.repeat})' if args.repeat > 1 else ''}...",
                          flush=True)
                    r = run_sim(sim, cms, 1000, 10, ["-i", "0", "-d", str(args.duration),
                                                     "--concurrency", str(conc)],
                                os.path.join(c.dir, "sim.log"))
                    got.setdefault(name, []).append(r)
                    print(f"  {r['heartbeats_per_s']:.0f} req/s, {r['disks_per_s']:.0f} disks/s, "
                          f"p50 {r['p50_ms']:.2f} ms, p99 {r['p99_ms']:.2f} ms, "
                          f"errors {r['errors']}", flush=True)
            for name, rs in got.items():
                rows.append((name, conc, median_run(rs, "heartbeats_per_s")))
        rss = [rss_mb(c.procs[i].pid) for i in (1, 2, 3)]
    finally:
        c.shutdown()
    return rows, rss


def scale(args, binary, sim):
    c = Cluster(nodes=3, binary=binary, log_level="warn")
    try:
        c.start_all()
        base = [rss_mb(c.procs[i].pid) for i in (1, 2, 3)]
        cms = [c.http(i) for i in (1, 2, 3)]
        n = args.scale_hosts * args.scale_disks
        print(f"registering {args.scale_hosts} hosts x {args.scale_disks} disks = {n} disks...",
              flush=True)
        t0 = time.time()
        proc = subprocess.Popen([sim, *GENERATION, "--cm", ",".join(cms), "-H",
                                 str(args.scale_hosts), "-D", str(args.scale_disks), "--no-serve",
                                 "-i", "30",
                                 "--concurrency", "256"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        for line in proc.stderr:
            if "registered" in line:
                break
        reg_s = time.time() - t0
        print(f"  registered in {reg_s:.1f} s ({2 * n / reg_s:.0f} writes/s: alloc + add)",
              flush=True)
        total = c.stat(1)["space_stat"]["total_disk"]
        time.sleep(args.settle)  # a full heartbeat period at 30 s, snapshots taken meanwhile
        lid = c.wait_leader()
        stat_ms = timed_get(f"http://{c.http(lid)}/stat")
        list_ms = timed_get(f"http://{c.http(lid)}/disk/list?count=200&marker={n // 2}")
        host_ms = timed_get(f"http://{c.http(lid)}/disk/list?host=http://127.0.0.1:18500")
        rss = [rss_mb(c.procs[i].pid) for i in (1, 2, 3)]
        proc.terminate()
        proc.wait(timeout=60)
    finally:
        c.shutdown()
    return {"disks": total, "register_s": reg_s, "rss_base": base, "rss": rss, "stat": stat_ms,
            "list": list_ms, "host_list": host_ms}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=int, default=20)
    ap.add_argument("--concurrency", default="256,1000")
    ap.add_argument("--skip-scale", action="store_true")
    ap.add_argument("--skip-capacity", action="store_true")
    ap.add_argument("--scale-hosts", type=int, default=10000)
    ap.add_argument("--scale-disks", type=int, default=20)
    ap.add_argument("--settle", type=int, default=35)
    ap.add_argument("--build", default=os.environ.get("CM_BUILD", "build"))
    ap.add_argument("--placement", choices=PLACEMENTS, default="both", help=PLACEMENT_HELP)
    ap.add_argument("--repeat", type=int, default=1,
                    help="heartbeat runs per placement, taking turns; the median is shown")
    args = ap.parse_args()
    binary = os.path.join(HERE, "..", args.build, "clustermgr")
    sim = os.path.join(HERE, "..", args.build, "blobnode-sim")
    rows, rss_cap, sc = [], None, None
    if not args.skip_capacity:
        rows, rss_cap = capacity(args, binary, sim)
    if not args.skip_scale:
        sc = scale(args, binary, sim)
    print()
    if rows:
        print("| heartbeats (1,000 hosts x 10 disks) | in flight | requests/s | disks/s | p50 ms | "
              "p99 ms | p99.9 ms | errors |")
        print("|---|---|---|---|---|---|---|---|")
        for name, conc, r in rows:
            print(f"| {name} | {conc} | {r['heartbeats_per_s']:.0f} | {r['disks_per_s']:.0f} | "
                  f"{r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['p999_ms']:.2f} | {r['errors']} |")
        by = {(name, conc): r for name, conc, r in rows}
        for (name, conc), r in by.items():
            lead = by.get(("all to the leader", conc))
            if name == "spread over the 3 nodes" and lead:
                print("\n" + spread_ratio_line(f"heartbeats, {conc} in flight", r, lead,
                                               "heartbeats_per_s", name, "all to the leader"))
        print("\nRSS after the capacity runs (10,000 disks): "
              + ", ".join(f"node {i + 1} {m:.0f} MiB" for i, m in enumerate(rss_cap)))
    if sc:
        print(f"\n{sc['disks']} disks registered in {sc['register_s']:.1f} s; RSS per node: "
              + ", ".join(f"node {i + 1} {m:.0f} MiB" for i, m in enumerate(sc["rss"]))
              + " (empty: " + ", ".join(f"{m:.0f}" for m in sc["rss_base"]) + " MiB)")
        for name, key in (("GET /stat", "stat"), ("GET /disk/list?count=200", "list"),
                          ("GET /disk/list?host=", "host_list")):
            med, mx, size = sc[key]
            print(f"{name} on the leader: median {med:.1f} ms, max {mx:.1f} ms ({size} bytes)")


if __name__ == "__main__":
    main()
