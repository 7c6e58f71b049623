"""What `cmctl migrate` costs on a large source: 100,000 EC3P3 volumes on 10,000 disks.

The source is a 3-node cluster restored from a state built by volgen (1,000 hosts x 10 disks in
one IDC, 5 % of the volumes leased to 10.200.0.1); migrate reads it over HTTP through the
leader, under /usr/bin/time -v, and writes the stream; a 1-node cluster restored from that
stream is then compared with the source by `migrate --verify` (also timed). Prints one RESULT
line per command and a markdown table.

usage: /usr/bin/python3 bench/bench_migrate.py [--build build] [--volumes 100000]
                                               [--hosts 1000] [--disks 10]
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "cluster"))
sys.path.insert(0, os.path.dirname(__file__))
from bench_volumes import restored_cluster, tool, volgen  # noqa: E402
from cmcluster import Cluster  # noqa: E402

NO_POOL = {"volume_mgr_config": {"min_allocable_volume_count": 0}}


def timed(cmd):
    """Run under /usr/bin/time -v: (wall seconds, peak RSS MiB, stdout, stderr)."""
    t0 = time.time()
    r = subprocess.run(["/usr/bin/time", "-v", *cmd], capture_output=True, text=True, timeout=3600)
    wall = time.time() - t0
    if r.returncode != 0:
        raise RuntimeError(f"{cmd[0]} exited {r.returncode}: {r.stderr[-3000:]}")
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", r.stderr).group(1))
    return wall, rss / 1024, r.stdout, r.stderr


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.environ.get("CM_BUILD", "build"))
    ap.add_argument("--volumes", type=int, default=100000)
    ap.add_argument("--hosts", type=int, default=1000)
    ap.add_argument("--disks", type=int, default=10)
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="cmbench-migrate-")
    snap = os.path.join(work, "source.snap")
    g = volgen(args.build, snap, "--volumes", str(args.volumes), "--mode", "EC3P3", "--idc", "z0",
               "--hosts", str(args.hosts), "--disks", str(args.disks), "--active", "5")
    src = restored_cluster(args.build, snap, NO_POOL)
    dst = None
    rows = []
    try:
        src.start_all()
        lid = src.wait_leader()
        hosts = ",".join(src.http(i) for i in [lid] + [i for i in (1, 2, 3) if i != lid])
        out = os.path.join(work, "migrated.snap")
        wall, rss, _, err = timed([tool(args.build, "cmctl"), "migrate", "--from", hosts,
                                   "--out", out, "--lease-hosts", "10.200.0.1"])
        summary = err[err.index("migrated in"):].strip() if "migrated in" in err else err[-600:]
        print(f"RESULT cmd=migrate volumes={g['volumes']} disks={g['disks']} wall_s={wall:.1f} "
              f"peak_rss_mib={rss:.0f} bytes={os.path.getsize(out)}\n{summary}", flush=True)
        rows.append(("migrate (read, build, write)", wall, rss))

        dst = Cluster(nodes=1, binary=tool(args.build, "clustermgr"), log_level="warn",
                      extra=NO_POOL)
        r = subprocess.run([tool(args.build, "cmctl"), "snapshot", "restore", out,
                            dst.data_dir(1), "--node-id", "1", "--peers",
                            f"1={dst.raft_addr(1)}"], capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(r.stderr)
        dst.start_all()
        wall, rss, report, _ = timed([tool(args.build, "cmctl"), "migrate", "--verify",
                                      "--from", hosts, "--to", dst.http(1),
                                      "--lease-hosts", "10.200.0.1"])
        print(f"RESULT cmd=verify wall_s={wall:.1f} peak_rss_mib={rss:.0f} "
              f"report={report.strip().splitlines()[-1]!r}", flush=True)
        rows.append(("verify (both clusters read, compared)", wall, rss))
    finally:
        src.shutdown()
        if dst:
            dst.shutdown()
    print(f"\n| {g['volumes']:,} EC3P3 volumes, {g['disks']:,} disks | wall s | peak RSS MiB |")
    print("|---|---|---|")
    for name, wall, rss in rows:
        print(f"| {name} | {wall:.1f} | {rss:.0f} |")


if __name__ == "__main__":
    main()
