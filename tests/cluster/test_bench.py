"""The short slice of the benchmarks that make test runs: the load generator does what it reports,
and the core benchmark runs end to end. The campaigns themselves are `make bench`,
`make bench-etcd` and `make bench-knobs` (bench/README.md)."""
import base64
import os
import re
import subprocess
import sys

from cmcluster import BUILD, ROOT

sys.path.insert(0, os.path.join(ROOT, "bench"))
from drive import load  # noqa: E402


def test_loadgen_writes_what_it_counts(make_cluster):
    c = make_cluster(nodes=3)
    lid = c.wait_leader()
    r = load(f"http://{c.http(lid)}", "kv_set", 4, 1, client="loadgen", build=BUILD, quiet=True)
    assert r["requests"] > 50 and r["errors"] == 0 and r["non2xx"] == 0, r
    assert 0 < r["p50_ms"] <= r["p99_ms"] <= r["p999_ms"] <= r["max_ms"], r
    # every acknowledged write is there (and at most the 4 still in flight at the deadline more)
    keys, marker = {}, ""
    while True:
        page = c.get(1, f"/kv/list?prefix=bench/&count=1000&marker={marker}").json()
        keys.update((kv["key"], kv["value"]) for kv in page["kvs"] or [])
        marker = page["marker"]
        if not marker:
            break
    assert r["requests"] <= len(keys) <= r["requests"] + 4, (r, len(keys))
    assert all(base64.b64decode(v) == b"v" * 64 for v in keys.values())
    assert {k.split("/")[1] for k in keys} == {"0", "1", "2", "3"}


def test_loadgen_counts_refusals(make_cluster):
    c = make_cluster(nodes=1, max_nodes=1)
    lid = c.wait_leader()
    # no disks, so no volume can be allocated: every answer is an error status
    r = load(f"http://{c.http(lid)}", "volume_alloc", 2, 0.5, client="loadgen", build=BUILD,
             quiet=True)
    assert r["requests"] > 0 and r["non2xx"] == r["requests"] and r["errors"] == r["requests"], r


def test_core_benchmark_runs(tmp_path):
    env = dict(os.environ, CM_BUILD=BUILD)
    p = subprocess.run([sys.executable, os.path.join(ROOT, "bench", "bench_core.py"),
                        "--duration", "1", "--clients", "2", "--kills", "1", "--build", BUILD],
                       capture_output=True, text=True, timeout=180, env=env, cwd=str(tmp_path))
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    rows = re.findall(r"^\| (config/\S+ [^|]+) \| 2 \| (\d+) \|", p.stdout, re.M)
    # set and get, each via the leader, via a follower and spread over every member
    assert len(rows) == 6 and all(int(ops) > 0 for _, ops in rows), p.stdout[-2000:]
    assert sum("spread over every member" in name for name, _ in rows) == 2, rows
    m = re.search(r"new leader: median ([\d.]+) s", p.stdout)
    assert m and float(m.group(1)) < 10, p.stdout[-2000:]
