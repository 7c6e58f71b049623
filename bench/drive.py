"""Run one load against an HTTP endpoint and return its RESULT fields as floats.

Two load generators do the same requests: build/loadgen (bench/loadgen.c, the default: every
request's latency is kept, so the percentiles are exact) and wrk with the scripts of bench/wrk/.
wrk reports a latency tail for our nodes that neither loadgen, a raw-socket client nor the
node's own request histogram sees (bench/README.md), so it is kept only for comparison
(BENCH_CLIENT=wrk or --client wrk) and for the workloads loadgen cannot express.
"""
import base64
import os
import re
import subprocess

HERE = os.path.dirname(os.path.abspath(__file__))

READ_KEY64 = base64.b64encode(b"bench-read-key").decode()
# name -> (wrk script, method, path, loadgen body). In loadgen's path and body, {key} is
# bench/<connection>/<n mod 10000>, {key64} its base64, {id} <connection>-<n mod 10000> and
# {value64} 64 bytes in base64.
WORKLOADS = {
    "kv_set": ("kv_set.lua", "POST", "/kv/set", '{"key":"{key}","value":"{value64}"}'),
    "kv_get": ("kv_get.lua", "GET", "/kv/get/bench-read-key", None),
    "kv_set_unique": ("kv_set_unique.lua", "POST", "/kv/set",
                      '{"key":"{key}","value":"%s"}' % ("QmVuY2ht" * 16)),
    "kv_get_one": ("kv_get_one.lua", "GET", "/kv/get/bench-read", None),
    "etcd_put": ("etcd_put.lua", "POST", "/v3/kv/put", '{"key":"{key64}","value":"{value64}"}'),
    "etcd_range": ("etcd_range.lua", "POST", "/v3/kv/range", '{"key":"%s"}' % READ_KEY64),
    "config_set": ("config_set.lua", "POST", "/config/set", '{"key":"bench-{id}","value":"v-{id}"}'),
    "config_get": ("config_get.lua", "GET", "/config/get?key=balance", None),
    "bid_alloc": ("bid_alloc.lua", "POST", "/bid/alloc",
                  '{"count":%d}' % int(os.environ.get("BID_COUNT", "1"))),
    "volume_alloc": ("volume_alloc.lua", "POST", "/volume/alloc", '{"code_mode":%d,"count":%d}' % (
        int(os.environ.get("CODE_MODE", "11")), int(os.environ.get("COUNT", "1")))),
    "volume_retain": ("volume_retain.lua", None, None, None),  # wrk only: tokens from a file
}


def _result(out, tool):
    m = re.search(r"RESULT (.*)", out)
    if not m:
        raise RuntimeError(f"{tool} gave no result:\n" + out)
    return m.group(1), dict((k, float(v)) for k, v in (kv.split("=") for kv in m.group(1).split()))


def wrk(url, script, conns, duration):
    threads = 1 if conns < 8 else 2
    cmd = ["wrk", "-t", str(threads), "-c", str(conns), "-d", f"{duration}s", "--timeout", "10s",
           "-s", os.path.join(HERE, "wrk", script), url]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60).stdout
    return _result(out, "wrk")


def loadgen(url, method, path, body, conns, duration, build):
    cmd = [os.path.join(HERE, "..", build, "loadgen"), "--url", url, "--conns", str(conns),
           "--duration", str(duration), "--method", method, "--path", path]
    if body is not None:
        cmd += ["--body", body]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60).stdout
    return _result(out, "loadgen")


def load(url, workload, conns, duration, client=None, build=None, quiet=False):
    """Drive `workload` (a WORKLOADS name) at url with `conns` connections for `duration` s."""
    client = client or os.environ.get("BENCH_CLIENT", "loadgen")
    build = build or os.environ.get("CM_BUILD", "build")
    script, method, path, body = WORKLOADS[workload]
    if client == "wrk" or method is None:
        line, r = wrk(url, script, conns, duration)
    else:
        line, r = loadgen(url, method, path, body, conns, duration, build)
    if not quiet:
        print(f"RESULT url={url} workload={workload} conns={conns} {line}", flush=True)
    return r


PLACEMENTS = ("leader", "spread", "both")
PLACEMENT_HELP = ("leader: every request to the leader; spread: each connection's requests "
                  "round-robin over every member, as CubeFS clients send them; both (default)")


def placements(arg):
    """The placements a --placement argument names, leader first."""
    return ["leader", "spread"] if arg == "both" else [arg]


def placement_url(cluster, placement, lid):
    """The --url of the load generator for a placement: the leader, or every member."""
    if placement == "leader":
        return f"http://{cluster.http(lid)}"
    return ",".join(f"http://{cluster.http(i)}" for i in sorted(cluster.procs))


def targets_of(cluster, placement, lid, follower):
    """(name, url) per placement; `both` also measures a single follower (all its writes
    forwarded), the worst case of a client that knows one member."""
    out = []
    for pl in placements(placement):
        out.append(("via the leader" if pl == "leader" else "spread over every member",
                    placement_url(cluster, pl, lid)))
        if pl == "leader" and placement == "both":
            out.append(("via a follower", f"http://{cluster.http(follower)}"))
    return out


def median_run(runs, key="ops"):
    """The run with the median `key` (the lower middle one of an even count), with every run's
    figure in r["runs"]."""
    order = sorted(runs, key=lambda r: r[key])
    r = dict(order[(len(order) - 1) // 2])
    r["runs"] = [x[key] for x in runs]
    return r


def run_rows(targets, workloads, clients_list, duration, repeat=1):
    """Each workload (name, WORKLOADS name) at each target (name, url) and client count: rows of
    (name, clients, result), with progress on stdout. With repeat > 1 the targets take turns,
    run after run, and each row is the median run (its r["runs"]: every run's ops/s)."""
    rows = []
    for clients in clients_list:
        for wname, workload in workloads:
            runs = {tname: [] for tname, _ in targets}
            for rep in range(repeat):
                for tname, url in targets:
                    name = f"{wname} {tname}"
                    print(f"running {name} with {clients} client(s) for {duration}s"
                          f"{f' (run {rep + 1} of {repeat})' if repeat > 1 else ''}...", flush=True)
                    r = load(url, workload, clients, duration)
                    runs[tname].append(r)
                    print(f"  ops/s {r['ops']:.0f}  p50 {r['p50_ms']:.2f} ms  p99 "
                          f"{r['p99_ms']:.2f} ms  errors {int(r['errors'])}", flush=True)
            for tname, _ in targets:
                rows.append((f"{wname} {tname}", clients, median_run(runs[tname])))
    return rows


def print_spread_ratios(rows, key="ops"):
    """One line per workload measured both ways: spread over every member / via the leader."""
    by = {(name, c): r for name, c, r in rows}
    for (name, c), r in by.items():
        if not name.endswith(" spread over every member"):
            continue
        lead = by.get((name.replace(" spread over every member", " via the leader"), c))
        if lead:
            print(spread_ratio_line(f"{name.replace(' spread over every member', '')}, {c} "
                                    "clients", r, lead, key, "spread over every member",
                                    "via the leader"))


def spread_ratio_line(what, spread, lead, key, spread_name, lead_name):
    """`what: <spread_name> N % of <lead_name>`, with every run's figure when there are several."""
    if not lead[key]:
        return f"{what}: {lead_name} measured nothing"
    runs = ""
    if len(spread.get("runs", [])) > 1:
        runs = f" (runs: spread {fmt_runs(spread)}; leader {fmt_runs(lead)})"
    return f"{what}: {spread_name} {spread[key] / lead[key] * 100:.0f} % of {lead_name}{runs}"


def fmt_runs(r):
    return ", ".join(f"{x:.0f}" for x in r["runs"])
