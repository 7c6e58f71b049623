#!/usr/bin/python3
"""Blobnodes of the current CubeFS release (v3.5.1+) against fresh local 3-node clusters, driven
by tools/blobnode-sim, next to the 2022 generation in the same run.

1. Registration at scale: H hosts x D disks (default 10,000 x 20 = 200,000 disks) start at
   once. A current host registers as a service, adds its node, lists its disks, then allocates
   and adds each disk under its node; a 2022 host only allocates and adds its disks. Reports the
   time until every host registered, the RSS of every node, and the latency of /topo/info,
   /node/info, /stat and a /disk/list page at that size.
2. Heartbeat proposals: 1,000 hosts x 10 disks heartbeat back to back (as bench_disks.py) with
   heartbeat_notify_interval_s at its default (10 s: beats more frequent than that are answered
   without a raft entry, as CubeFS v3.3+ does) and at -1 (every beat proposed). Reports
   requests/s, latency and commands proposed per request. A blobnode's default period is 30 s,
   above the interval, so this is what the filter saves for blobnodes that beat too often (or a
   beat retried after a lost answer), not for a fleet at its defaults.

usage: bench/bench_nodes.py [--hosts 10000 --disks 20] [--duration 10] [--build build]
"""
import argparse
import json
import os
import subprocess
import sys
import time


sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "cluster"))
from cmcluster import Cluster  # noqa: E402
from bench_disks import rss_mb, timed_get  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def register(args, binary, sim, generation):
    extra = {"task_switch_format": "current"} if generation == "current" else None
    c = Cluster(nodes=3, binary=binary, log_level="warn", extra=extra)
    try:
        c.start_all()
        base = [rss_mb(c.procs[i].pid) for i in (1, 2, 3)]
        cms = ",".join(c.http(i) for i in (1, 2, 3))
        n = args.hosts * args.disks
        print(f"{generation}: registering {args.hosts} hosts x {args.disks} disks...", flush=True)
        t0 = time.time()
        proc = subprocess.Popen([sim, "--generation", generation, "--cm", cms, "-H",
                                 str(args.hosts), "-D", str(args.disks), "--no-serve", "-i", "30",
                                 "--service-interval", "30", "--switch-interval", "15",
                                 "--report-interval", "60", "--concurrency", "256"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        for line in proc.stderr:
            if "registered" in line:
                break
        reg_s = time.time() - t0
        print(f"  registered in {reg_s:.1f} s", flush=True)
        lid = c.wait_leader()
        st = c.stat(lid)
        out = {"generation": generation, "hosts": args.hosts, "disks": n, "register_s": reg_s,
               "total_disk": st["space_stat"]["total_disk"],
               "blob_nodes": st["space_stat"]["total_blob_node"], "rss_base": base}
        url = f"http://{c.http(lid)}"
        out["stat"] = timed_get(url + "/stat")
        out["list"] = timed_get(url + f"/disk/list?count=200&marker={n // 2}")
        if generation == "current":
            out["topo"] = timed_get(url + "/topo/info", n=10)
            out["node_info"] = timed_get(url + f"/node/info?node_id={args.hosts // 2}")
        out["rss"] = [rss_mb(c.procs[i].pid) for i in (1, 2, 3)]
        proc.terminate()
        proc.wait(timeout=60)
    finally:
        c.shutdown()
    return out


def run_sim(sim, cms, hosts, disks, extra):
    out = subprocess.run([sim, "--generation", "2022", "--cm", cms, "-H", str(hosts), "-D",
                          str(disks), "--no-serve", "--json", *extra], capture_output=True,
                         text=True, timeout=3600)
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
    if out.returncode != 0 or not lines:
        raise RuntimeError(f"blobnode-sim failed ({out.returncode}):\n{out.stderr[-2000:]}")
    return json.loads(lines[-1])


def proposed(c):
    """Commands proposed by every node so far (/metrics)."""
    total = 0
    for i in (1, 2, 3):
        for line in c.get(i, "/metrics").text.splitlines():
            if line.startswith("clustermgr_raft_proposals_total "):
                total += int(float(line.split()[1]))
    return total


def heartbeats(args, binary, sim, notify):
    # no volume pool: the leader's own volume job would propose too (its disks serve no chunks)
    c = Cluster(nodes=3, binary=binary, log_level="warn",
                extra={"heartbeat_notify_interval_s": notify,
                       "volume_mgr_config": {"min_allocable_volume_count": 0}})
    try:
        c.start_all()
        cms = ",".join(c.http(i) for i in (1, 2, 3))
        run_sim(sim, cms, 1000, 10, ["-i", "30", "-d", "1"])  # register once
        before = proposed(c)
        print(f"heartbeats, heartbeat_notify_interval_s {notify}, {args.duration} s...",
              flush=True)
        r = run_sim(sim, cms, 1000, 10, ["-i", "0", "-d", str(args.duration),
                                         "--concurrency", "256"])
        r["entries"] = proposed(c) - before
        r["notify"] = notify
        requests_sent = r["heartbeats_per_s"] * args.duration
        r["entries_per_request"] = r["entries"] / requests_sent if requests_sent else 0
        print(f"  {r['heartbeats_per_s']:.0f} req/s, p50 {r['p50_ms']:.2f} ms, p99 "
              f"{r['p99_ms']:.2f} ms, {r['entries']} commands proposed", flush=True)
    finally:
        c.shutdown()
    return r


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--hosts", type=int, default=10000)
    ap.add_argument("--disks", type=int, default=20)
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--skip-register", action="store_true")
    ap.add_argument("--skip-heartbeats", action="store_true")
    ap.add_argument("--build", default=os.environ.get("CM_BUILD", "build"))
    args = ap.parse_args()
    binary = os.path.join(HERE, "..", args.build, "clustermgr")
    sim = os.path.join(HERE, "..", args.build, "blobnode-sim")
    regs, hbs = [], []
    if not args.skip_register:
        regs = [register(args, binary, sim, g) for g in ("current", "2022")]
    if not args.skip_heartbeats:
        hbs = [heartbeats(args, binary, sim, n) for n in (10, -1)]
    print()
    if regs:
        print("| generation | hosts x disks | registered in | hosts/s | disks/s | nodes, disks "
              "counted | RSS per node MiB (empty) | /stat p50 ms | /disk/list p50 ms | "
              "/topo/info p50 ms (bytes) | /node/info p50 ms |")
        print("|---|---|---|---|---|---|---|---|---|---|---|")
        for r in regs:
            topo = f"{r['topo'][0]:.1f} ({r['topo'][2]})" if "topo" in r else "–"
            ni = f"{r['node_info'][0]:.2f}" if "node_info" in r else "–"
            print(f"| {r['generation']} | {r['hosts']} x {r['disks'] // r['hosts']} | "
                  f"{r['register_s']:.1f} s | {r['hosts'] / r['register_s']:.0f} | "
                  f"{r['disks'] / r['register_s']:.0f} | {r['blob_nodes']}, {r['total_disk']} | "
                  + ", ".join(f"{m:.0f}" for m in r["rss"])
                  + " (" + ", ".join(f"{m:.0f}" for m in r["rss_base"]) + ") | "
                  f"{r['stat'][0]:.1f} | {r['list'][0]:.1f} | {topo} | {ni} |")
        if len(regs) == 2:
            print(f"\nregistration time, current / 2022: "
                  f"{regs[0]['register_s'] / regs[1]['register_s']:.2f}x")
    if hbs:
        print("\n| heartbeat_notify_interval_s | requests/s | disks/s | p50 ms | p99 ms | commands "
              "proposed | per request |")
        print("|---|---|---|---|---|---|---|")
        for r in hbs:
            print(f"| {r['notify']} | {r['heartbeats_per_s']:.0f} | {r['disks_per_s']:.0f} | "
                  f"{r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['entries']} | "
                  f"{r['entries_per_request']:.3f} |")
        if len(hbs) == 2 and hbs[1]["heartbeats_per_s"]:
            print(f"\nthroughput with the filter / without: "
                  f"{hbs[0]['heartbeats_per_s'] / hbs[1]['heartbeats_per_s']:.2f}x")


if __name__ == "__main__":
    main()
