#!/usr/bin/python3
"""Volumes at scale.

1. /volume/alloc and /volume/retain ops/s and latency at 1, 16 and 64 clients against a 3-node
   cluster holding 100,000 EC3P3 volumes (built by build/volgen, restored with cmctl).
2. 1,000,000 EC6P6 volumes: what volgen measures in process (memory per unit, snapshot take /
   encode / load), then a 3-node cluster restored from that state: RSS per node, the time to
   start (snapshot load), to restart after kill -9 (snapshot load + log replay), and for a new
   member to catch up from scratch (snapshot transfer and load).

usage: bench/bench_volumes.py [--duration 5] [--clients 1,16,64] [--volumes 100000]
                              [--big 1000000] [--skip-alloc] [--skip-big]
Needs `make all bench-tools` and wrk (volume/retain reads its tokens from a file, a wrk script).
"""
import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "cluster"))
sys.path.insert(0, os.path.dirname(__file__))
from drive import load  # noqa: E402
from cmcluster import Cluster  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def tool(build, name):
    return os.path.join(HERE, "..", build, name)


def volgen(build, out, *args):
    r = subprocess.run([tool(build, "volgen"), "--out", out, *args], capture_output=True,
                       text=True, timeout=1800)
    if r.returncode != 0:
        raise RuntimeError(r.stderr)
    return json.loads(r.stdout)


def restored_cluster(build, snap, extra, idc="z0", log_level="warn", max_nodes=3,
                     snapshot_threshold=0):
    """A 3-node cluster whose data directories are restored from `snap` (cmctl)."""
    c = Cluster(nodes=3, max_nodes=max_nodes, binary=tool(build, "clustermgr"), idc=idc,
                log_level=log_level, extra=extra, snapshot_threshold=snapshot_threshold)
    peers = ",".join(f"{i}={c.raft_addr(i)}" for i in (1, 2, 3))
    for i in (1, 2, 3):
        r = subprocess.run([tool(build, "cmctl"), "snapshot", "restore", snap, c.data_dir(i),
                            "--node-id", str(i), "--peers", peers], capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(r.stderr)
    return c


def rss_mib(c, i):
    with open(f"/proc/{c.procs[i].pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0


def wait_until(pred, timeout, what):
    end = time.time() + timeout
    while time.time() < end:
        try:
            if pred():
                return
        except Exception:
            pass
        time.sleep(0.05)
    raise TimeoutError(what)


def ready(c, i):
    try:
        return c.get(i, "/readyz", timeout=2).status_code == 200
    except Exception:
        return False


def caught_up(c, i, lid):
    target = c.stat(lid)["raft_status"]["commit"]
    wait_until(lambda: c.stat(i)["raft_status"]["applied"] >= target, 600, f"node {i} catch-up")


def bench_alloc_retain(args):
    snap = os.path.join(args.tmp, "vols100k.snap")
    g = volgen(args.build, snap, "--volumes", str(args.volumes), "--mode", "EC3P3", "--idc", "z0",
               "--hosts", "30", "--disks", "12", "--active", "0", "--reported", "10")
    print(f"state: {g['volumes']} EC3P3 volumes on {g['disks']} disks, "
          f"snapshot {g['snapshot_bytes'] / 1e6:.1f} MB", flush=True)
    rows = []
    # alloc: short leases that lapse back into the pool, so the runs never empty it
    extra = {"volume_mgr_config": {"retain_time_s": 1, "check_expired_volume_interval_s": 1}}
    c = restored_cluster(args.build, snap, extra)
    try:
        c.start_all()
        lid = c.wait_leader(timeout=60)
        assert c.stat(lid)["volume_stat"]["total_volume"] == args.volumes
        for clients in [int(x) for x in args.clients.split(",")]:
            wait_until(lambda: c.stat(lid)["volume_stat"]["active_volume"] == 0, 60, "leases lapse")
            print(f"running volume/alloc with {clients} client(s) for {args.duration}s...", flush=True)
            r = load(f"http://{c.http(lid)}", "volume_alloc", clients, args.duration)
            rows.append(("volume/alloc (count 1) on the leader", clients, r))
            print(f"  ops/s {r['ops']:.0f}  p50 {r['p50_ms']:.2f} ms  p99 {r['p99_ms']:.2f} ms  "
                  f"non-2xx {int(r['non2xx'])}", flush=True)
    finally:
        c.shutdown()
    # retain: 10,000 leases renewed one per request
    c = restored_cluster(args.build, snap, {})
    try:
        c.start_all()
        lid = c.wait_leader(timeout=60)
        tokens = []
        while len(tokens) < 10000:
            r = c.post(lid, "/volume/alloc", {"code_mode": 11, "count": 10000 - len(tokens)})
            tokens += [v["token"] for v in r.json()["alloc_volume_infos"]]
        tf = os.path.join(args.tmp, "tokens.txt")
        with open(tf, "w") as f:
            f.write("\n".join(tokens) + "\n")
        os.environ["TOKENS_FILE"] = tf
        for clients in [int(x) for x in args.clients.split(",")]:
            print(f"running volume/retain with {clients} client(s) for {args.duration}s...", flush=True)
            r = load(f"http://{c.http(lid)}", "volume_retain", clients, args.duration)
            rows.append(("volume/retain (1 token) on the leader", clients, r))
            print(f"  ops/s {r['ops']:.0f}  p50 {r['p50_ms']:.2f} ms  p99 {r['p99_ms']:.2f} ms  "
                  f"non-2xx {int(r['non2xx'])}", flush=True)
        # every lease still renewable: nothing lapsed or went wrong
        r = c.post(lid, "/volume/retain", {"tokens": tokens[:1000]})
        assert len(r.json()["retain_vol_tokens"]) == 1000
    finally:
        c.shutdown()
    print()
    print(f"| workload ({args.volumes:,} volumes) | clients | ops/s | p50 ms | p99 ms | p99.9 ms "
          "| errors |")
    print("|---|---|---|---|---|---|---|")
    for name, clients, r in rows:
        print(f"| {name} | {clients} | {r['ops']:.0f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | "
              f"{r['p999_ms']:.2f} | {int(r['errors'])} |")


def bench_big(args):
    snap = os.path.join(args.tmp, "vols1m.snap")
    t0 = time.time()
    g = volgen(args.build, snap, "--volumes", str(args.big), "--mode", "EC6P6", "--idc",
               "z0,z1,z2", "--hosts", "100", "--disks", "12", "--verify")
    print(f"volgen ({time.time() - t0:.1f} s): {json.dumps(g)}", flush=True)
    extra = {"volume_mgr_config": {"min_allocable_volume_count": 5}}
    c = restored_cluster(args.build, snap, extra, idc="z0,z1,z2", log_level="info", max_nodes=4,
                         snapshot_threshold=args.snapshot_threshold)
    out = {}
    try:
        t1 = time.time()
        c.start_all(wait_leader=False)
        wait_until(lambda: all(ready(c, i) for i in (1, 2, 3)), 600, "ready")
        out["start_s"] = time.time() - t1
        lid = c.wait_leader()
        assert c.stat(lid)["volume_stat"]["total_volume"] == args.big
        # a log after the snapshot: leases, one command each, timed one after the other; the
        # nodes take snapshots of the whole state meanwhile (every snapshot_threshold entries)
        lat = []
        for _ in range(args.log_entries):
            t = time.time()
            r = c.post(lid, "/volume/alloc", {"code_mode": 2, "count": 1})
            lat.append(time.time() - t)
            assert r.status_code == 200, r.text
        lat.sort()
        out["alloc_while_snapshotting_ms"] = {
            "p50": round(lat[len(lat) // 2] * 1000, 2), "p99": round(lat[len(lat) * 99 // 100] * 1000, 2),
            "max": round(lat[-1] * 1000, 2)}
        time.sleep(3)
        out["rss_mib"] = [round(rss_mib(c, i)) for i in (1, 2, 3)]
        # restart a follower: snapshot load + replay of the log after it
        f = next(i for i in (1, 2, 3) if i != lid)
        c.kill(f, signal.SIGKILL)
        t2 = time.time()
        c.start(f, wait=False)
        caught_up(c, f, lid)
        wait_until(lambda: ready(c, f), 600, "restarted node ready")
        out["restart_s"] = time.time() - t2
        # a new member from scratch
        c.start(4)
        t3 = time.time()
        body = {"peer_id": 4, "host": c.raft_addr(4), "member_type": 1, "node_host": c.http(4)}
        assert c.post(lid, "/member/add", body, timeout=600).status_code == 200
        caught_up(c, 4, lid)
        out["new_member_s"] = time.time() - t3
        out["rss_new_member_mib"] = round(rss_mib(c, 4))
        st4 = c.get(4, "/stat").json()["volume_stat"]
        assert st4 == c.stat(lid)["volume_stat"], (st4, c.stat(lid)["volume_stat"])
        snaps = [line for i in (1, 2, 3, 4) for line in c.log_text(i).splitlines()
                 if "took a snapshot" in line or "restored the state" in line]
        out["snapshot_log"] = [s[s.index("node="):] for s in snaps]
    finally:
        c.shutdown()
    print(json.dumps(out, indent=1))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=int, default=5)
    ap.add_argument("--clients", default="1,16,64")
    ap.add_argument("--volumes", type=int, default=100000)
    ap.add_argument("--big", type=int, default=1000000)
    ap.add_argument("--log-entries", type=int, default=5000)
    ap.add_argument("--snapshot-threshold", type=int, default=2048)
    ap.add_argument("--skip-alloc", action="store_true")
    ap.add_argument("--skip-big", action="store_true")
    ap.add_argument("--build", default=os.environ.get("CM_BUILD", "build"))
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="cmbench-") as tmp:
        args.tmp = tmp
        if not args.skip_alloc:
            bench_alloc_retain(args)
        if not args.skip_big:
            bench_big(args)


if __name__ == "__main__":
    main()
