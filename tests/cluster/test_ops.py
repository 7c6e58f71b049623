"""Operations: /metrics (checked with promtool), health, log level, request and audit logs,
service-manager notifications, example configs, the dashboard's data and assets, and forced
recovery after a loss of quorum. The browser test of the dashboard is in test_dashboard.py."""
import json
import os
import re
import shutil
import socket
import subprocess
import time

import pytest

from cmcluster import BINARY, ROOT, Cluster

SWITCHES = ["disk_repair", "balance", "disk_drop", "blob_delete", "shard_repair", "vol_inspect",
            "volume_inspect", "data_inspect"]
SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def wait_for(pred, timeout=15, what="condition"):
    end = time.time() + timeout
    while time.time() < end:
        v = pred()
        if v:
            return v
        time.sleep(0.05)
    raise TimeoutError(what)


def parse_metrics(text):
    """{(name, frozenset(labels)): value} and {name: type}."""
    samples, types = {}, {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, typ = line.split(" ", 3)
            assert name not in types, f"family {name} declared twice"
            types[name] = typ
            continue
        if not line or line.startswith("#"):
            continue
        m = SAMPLE.match(line)
        assert m, f"bad sample line: {line!r}"
        labels = frozenset(LABEL.findall(m.group(3) or ""))
        samples[(m.group(1), labels)] = float(m.group(4))
    return samples, types


def value(samples, name, _default=None, **labels):
    want = set(labels.items())
    found = [v for (n, ls), v in samples.items() if n == name and want <= set(ls)]
    if not found and _default is not None:
        return _default
    assert found, f"no sample {name} {labels}"
    return sum(found)


def promtool(text):
    p = subprocess.run(["promtool", "check", "metrics"], input=text.encode(), capture_output=True,
                       timeout=30)
    return p.returncode, (p.stdout + p.stderr).decode()


@pytest.fixture(scope="module")
def ops3():
    """A 3-node cluster with an audit log directory per node."""
    c = Cluster(nodes=3)
    for i in c.configs:
        c.configs[i]["auditlog"] = {"logdir": os.path.join(c.dir, f"audit{i}")}
        c.write_config(i)
    c.start_all()
    yield c
    c.shutdown()
    reports = c.sanitizer_reports()
    if not reports:
        shutil.rmtree(c.dir, ignore_errors=True)
    assert not reports, "sanitizer reports:\n" + "\n".join(reports[:20])


def audit_lines(c, i):
    path = os.path.join(c.dir, f"audit{i}", "audit.log")
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


# ---- metrics ---------------------------------------------------------------------------------

def test_metrics_pass_promtool_on_every_node(ops3):
    c = ops3
    c.wait_leader()
    for i in (1, 2, 3):
        r = c.get(i, "/metrics")
        assert r.status_code == 200
        assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        rc, out = promtool(r.text)
        # 0: clean; 3: lint remarks only. The remarks must all be about the reference's names,
        # kept for compatibility (camelCase, a gauge ending in _count).
        assert rc in (0, 3), out
        for line in out.strip().splitlines():
            assert line.startswith("blobstore_clusterMgr_"), line
        parse_metrics(r.text)


def test_metrics_reference_gauges(ops3):
    c = ops3
    lid = c.wait_leader()
    for i in (1, 2, 3):
        s, types = parse_metrics(c.get(i, "/metrics").text)
        lead = "true" if i == lid else "false"
        base = {"region": "test-region", "cluster": "1", "is_leader": lead}
        st = c.stat(i)["raft_status"]
        for item in ("term", "applied_index", "committed_index", "peers"):
            value(s, "blobstore_clusterMgr_raft_stat", item=item, **base)
        assert value(s, "blobstore_clusterMgr_raft_stat", item="peers", **base) == 3
        assert value(s, "blobstore_clusterMgr_raft_stat", item="term", **base) == st["term"]
        for item in ("TotalSpace", "FreeSpace", "UsedSpace", "WritableSpace", "TotalBlobNode",
                     "TotalDisk"):
            assert value(s, "blobstore_clusterMgr_space_stat_info", item=item, **base) == 0
        for item in ("Total", "Available", "Readonly", "Expired", "Broken", "Repairing",
                     "Repaired", "Dropping", "Dropped"):
            value(s, "blobstore_clusterMgr_disk_stat_info", idc="z0", item=item, **base)
        for item in ("TotalChunk", "TotalFreeChunk"):
            value(s, "blobstore_clusterMgr_chunk_stat_info", idc="z0", item=item, **base)
        for status in ("lock", "idle", "total", "active", "allocatable", "unlocking"):
            value(s, "blobstore_clusterMgr_vol_status_vol_count", status=status, **base)
        value(s, "blobstore_clusterMgr_vol_retain_error", **base)
        value(s, "blobstore_clusterMgr_vol_alloc_over_disk_load", **base)
        value(s, "blobstore_clusterMgr_disk_heartbeat_change", region="test-region", cluster="1")
        for name in ("blobstore_clusterMgr_raft_stat", "blobstore_clusterMgr_space_stat_info"):
            assert types[name] == "gauge"
        assert types["clustermgr_raft_apply_duration_seconds"] == "histogram"
        assert types["clustermgr_raft_fsync_duration_seconds"] == "histogram"
        assert types["clustermgr_http_request_duration_seconds"] == "histogram"
        assert value(s, "clustermgr_raft_is_leader") == (1 if i == lid else 0)
        assert value(s, "clustermgr_raft_leader_id") == lid
        assert value(s, "clustermgr_raft_leader_changes_total") >= 1


def test_metrics_move_with_writes(ops3):
    c = ops3
    lid = c.wait_leader()
    follower = next(i for i in (1, 2, 3) if i != lid)
    before, _ = parse_metrics(c.get(lid, "/metrics").text)
    fbefore, _ = parse_metrics(c.get(follower, "/metrics").text)
    for k in range(20):
        assert c.post(lid, "/config/set", {"key": f"m{k}", "value": "v"}).status_code == 200
    for k in range(5):
        assert c.post(follower, "/config/set", {"key": f"f{k}", "value": "v"}).status_code == 200
    assert c.post(lid, "/config/set", {"key": "code_mode", "value": "x"}).status_code != 200
    c.wait_applied(c.stat(lid)["raft_status"]["commit"])
    after, _ = parse_metrics(c.get(lid, "/metrics").text)
    fafter, _ = parse_metrics(c.get(follower, "/metrics").text)

    def grew(name, by, s0=before, s1=after, **labels):
        d = value(s1, name, **labels) - value(s0, name, 0, **labels)
        assert d >= by, f"{name} {labels} grew by {d}, expected at least {by}"

    grew("clustermgr_raft_proposals_total", 25)
    grew("clustermgr_raft_proposals_committed_total", 25)
    assert value(after, "clustermgr_raft_proposals_failed_total") == \
        value(before, "clustermgr_raft_proposals_failed_total")
    grew("clustermgr_raft_commit_index", 25)
    grew("clustermgr_raft_applied_index", 25)
    grew("blobstore_clusterMgr_raft_stat", 25, item="committed_index")
    grew("clustermgr_http_requests_total", 25, route="config_set", status="2xx")
    grew("clustermgr_http_requests_total", 1, route="config_set", status="4xx")
    grew("clustermgr_http_request_duration_seconds_count", 25, route="config_set")
    grew("clustermgr_raft_apply_duration_seconds_count", 25)
    grew("clustermgr_raft_fsync_duration_seconds_count", 1)
    grew("clustermgr_raft_log_appended_entries_total", 25)
    assert value(after, "clustermgr_raft_fsync_duration_seconds_sum") > 0
    # buckets are cumulative and end at the count
    count = value(after, "clustermgr_raft_apply_duration_seconds_count")
    assert value(after, "clustermgr_raft_apply_duration_seconds_bucket", le="+Inf") == count
    # the follower applied the same commands and forwarded its writes
    grew("clustermgr_raft_apply_duration_seconds_count", 25, fbefore, fafter)
    grew("clustermgr_raft_fsync_duration_seconds_count", 1, fbefore, fafter)
    grew("clustermgr_http_forwarded_total", 5, fbefore, fafter)
    # replication lag per member, on the leader only
    for p in (1, 2, 3):
        assert value(after, "clustermgr_raft_replication_lag_entries", peer=str(p)) >= 0
    assert not [k for k in fafter if k[0] == "clustermgr_raft_replication_lag_entries"]


# ---- health ----------------------------------------------------------------------------------

def test_livez_and_readyz(ops3):
    c = ops3
    c.wait_leader()
    for i in (1, 2, 3):
        r = c.get(i, "/livez")
        assert (r.status_code, r.json()) == (200, {"status": "ok"})
        r = c.get(i, "/readyz")
        assert (r.status_code, r.json()) == (200, {"ready": True, "reason": "ok"})


def test_readyz_without_quorum(make_cluster):
    c = make_cluster(nodes=3, election_ms=300, heartbeat_ms=60)
    lid = c.wait_leader()
    survivor = next(i for i in (1, 2, 3) if i != lid)
    for i in (1, 2, 3):
        if i != survivor:
            c.kill(i)
    wait_for(lambda: c.get(survivor, "/readyz").status_code == 503, what="not ready without a quorum")
    r = c.get(survivor, "/readyz")
    assert (r.status_code, r.json()) == (503, {"ready": False, "reason": "no leader"})
    assert c.get(survivor, "/livez").status_code == 200
    assert c.get(survivor, "/metrics").status_code == 200  # still answered locally


# ---- logs ------------------------------------------------------------------------------------

def test_log_level_get_and_set(ops3):
    c = ops3
    assert c.get(1, "/log/level").json() == {"level": "info"}
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    cases = [("level=debug", form, "debug"), ("level=3", form, "error"), ("level=warn", form, "warn"),
             ('{"level":"info"}', {}, "info"), ('{"level":0}', {}, "debug"),
             ('{"level":"panic"}', {}, "fatal"), ("level=1", form, "info")]
    for body, headers, want in cases:
        r = c.post(1, "/log/level", body, headers=headers)
        assert (r.status_code, r.json()) == (200, {"level": want}), body
        assert c.get(1, "/log/level").json() == {"level": want}
    r = c.post(2, "/log/level?level=debug")
    assert r.json() == {"level": "debug"}
    assert c.get(2, "/log/level").json() == {"level": "debug"}
    assert c.get(3, "/log/level").json() == {"level": "info"}  # local to each node
    for bad in ("level=verbose", "level=9", '{"level":true}', "", '{"level":'):
        r = c.post(1, "/log/level", bad, headers=form if bad.startswith("level") else {})
        assert r.status_code == 400 and r.json()["code"] == "Argument", bad
        assert "level" in r.json()["error"] or "JSON" in r.json()["error"], r.json()
    assert c.post(2, "/log/level", "level=info", headers=form).json() == {"level": "info"}
    s, _ = parse_metrics(c.get(1, "/metrics").text)
    assert value(s, "clustermgr_log_level") == 1


def test_request_logs_follow_the_level(ops3):
    c = ops3
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    # info: a read leaves no line, a failed write does
    c.get(3, "/config/get?key=balance", headers={"X-Request-Id": "read-at-info"})
    r = c.post(3, "/config/set", {"key": ""}, headers={"X-Request-Id": "bad-write-1"})
    assert r.status_code == 400
    assert c.post(3, "/log/level", "level=debug", headers=form).status_code == 200
    c.get(3, "/config/get?key=balance", headers={"X-Request-Id": "read-at-debug"})
    c.get(3, "/stat")
    # a request is logged after its answer went out: see the line before the level goes back
    wait_for(lambda: re.search(r"req=3-\d+ GET /stat route=stat status=200", c.log_text(3)),
             what="the debug line of GET /stat")
    assert c.post(3, "/log/level", "level=info", headers=form).status_code == 200

    def logged():
        t = c.log_text(3)
        return "req=read-at-debug" in t and "req=bad-write-1" in t and t
    text = wait_for(logged, what="request log lines")
    assert "req=read-at-info" not in text
    line = next(ln for ln in text.splitlines() if "req=read-at-debug" in ln)
    assert re.search(r"^\S+Z debug node=3 \[http\] req=read-at-debug GET /config/get\?key=balance "
                     r"route=config_get status=200 latency_us=\d+ client=127\.0\.0\.1$", line), line
    line = next(ln for ln in text.splitlines() if "req=bad-write-1" in ln)
    assert " info  node=3 [http] " in line and "route=config_set status=400" in line, line
    # requests without an id get one made of node id and sequence
    assert re.search(r"req=3-\d+ GET /stat route=stat status=200", text)


def test_audit_log_has_every_write_once_per_node(ops3):
    c = ops3
    lid = c.wait_leader()
    follower = next(i for i in (1, 2, 3) if i != lid)
    r = c.post(follower, "/config/set", {"key": "audited", "value": "yes"},
               headers={"X-Request-Id": "audit-me-1", "X-Real-Ip": "10.1.2.3"})
    assert r.status_code == 200
    r = c.post(lid, "/config/delete?key=audited", headers={"X-Request-Id": "audit-me-2"})
    assert r.status_code == 200
    c.get(lid, "/config/get?key=balance", headers={"X-Request-Id": "audit-not-a-write"})
    c.post(follower, "/config/set", {"key": "x"}, headers={"X-Request-Id": "audit-bad"})
    c.post(follower, "/config/set", {"key": "no-id", "value": "1"})

    def found():
        lines = {i: audit_lines(c, i) for i in (1, 2, 3)}
        ids = {i: [a["req_id"] for a in lines[i]] for i in lines}
        ok = "audit-me-1" in ids[follower] and "audit-me-1" in ids[lid] and \
            "audit-me-2" in ids[lid] and "audit-bad" in ids[follower]
        return ok and lines
    lines = wait_for(found, what="audit lines (flushed within 200 ms)")
    fl = {a["req_id"]: a for a in lines[follower]}
    ll = {a["req_id"]: a for a in lines[lid]}
    a = fl["audit-me-1"]
    assert set(a) == {"time", "node", "req_id", "client", "peer", "method", "uri", "route",
                      "status", "latency_us", "body_bytes", "resp_bytes", "hops"}
    assert (a["node"], a["client"], a["method"], a["uri"], a["route"], a["status"], a["hops"]) == \
        (follower, "10.1.2.3", "POST", "/config/set", "config_set", 200, 0)
    # the client chose "10.1.2.3" (X-Real-Ip); the TCP peer it came from is logged beside it
    assert a["peer"] == "127.0.0.1"
    assert a["body_bytes"] == len(json.dumps({"key": "audited", "value": "yes"}))
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z$", a["time"])
    # the leader audits the forwarded request under the same id, with the client's address
    b = ll["audit-me-1"]
    assert (b["node"], b["client"], b["status"], b["hops"]) == (lid, "10.1.2.3", 200, 1)
    assert ll["audit-me-2"]["uri"] == "/config/delete?key=audited"
    assert fl["audit-bad"]["status"] == 400
    assert all(x["method"] != "GET" for i in lines for x in lines[i])
    # a request without an id is forwarded with the follower's, so both sides agree
    auto = [x["req_id"] for x in lines[follower] if x["req_id"].startswith(f"{follower}-")]
    assert auto and wait_for(lambda: auto[-1] in [x["req_id"] for x in audit_lines(c, lid)],
                             what="forwarded id")
    s, _ = parse_metrics(c.get(follower, "/metrics").text)
    assert value(s, "clustermgr_audit_lines_total") >= 3
    assert value(s, "clustermgr_audit_dropped_total") == 0


def test_unwritable_audit_dir_refuses_start(tmp_path):
    c = Cluster(nodes=1, workdir=str(tmp_path))
    blocker = tmp_path / "file"
    blocker.write_text("x")
    c.configs[1]["auditlog"] = {"logdir": str(blocker / "audit")}
    c.write_config(1)
    p = subprocess.run([BINARY, "-f", c.config_path(1)], capture_output=True, timeout=10)
    out = (p.stdout + p.stderr).decode()
    assert p.returncode != 0 and "refusing to start" in out and "audit" in out, out


# ---- dashboard data and assets ---------------------------------------------------------------

def test_dashboard_data(ops3):
    c = ops3
    lid = c.wait_leader()
    assert c.post(1, "/config/set", {"key": "vol_inspect", "value": "Enable"}).status_code == 200
    for i in (1, 2, 3):
        d = wait_for(lambda: (lambda d: d if d["switches"]["vol_inspect"] == "Enable" else None)(
            c.get(i, "/dashboard/data").json()), what="switch replicated")
        assert d["node"]["id"] == i and d["node"]["is_leader"] == (i == lid)
        assert d["node"]["ready"] is True and d["node"]["cluster_id"] == 1
        assert d["stat"]["raft_status"]["nodeId"] == i
        assert [(m["id"], m["role"], m["raft"], m["http"]) for m in d["members"]] == \
            [(k, "voter", c.raft_addr(k), c.http(k)) for k in (1, 2, 3)]
        # the cluster version, and the format version each member's binary applies
        assert d["stat"]["cluster_version"] == 2
        assert [m["format_version"] for m in d["members"]] == [2, 2, 2]
        assert set(d["switches"]) == set(SWITCHES)
        assert d["leader_history"] and d["leader_history"][0]["leader"] == lid
        if i == lid:
            assert d["leader_stat"] is None
        else:  # a follower brings the leader's replication progress along
            peers = d["leader_stat"]["raft_status"]["peers"]
            assert sorted(p["id"] for p in peers) == [1, 2, 3]


def test_dashboard_assets_are_built_in(ops3):
    c = ops3
    r = c.get(2, "/")
    assert r.status_code == 200 and r.headers["Content-Type"] == "text/html; charset=utf-8"
    assert "<title>clustermgr</title>" in r.text
    with open(os.path.join(ROOT, "web", "index.html")) as f:
        assert r.text == f.read()
    for name, ctype in (("app.js", "text/javascript"), ("style.css", "text/css")):
        r = c.get(2, "/web/" + name)
        assert r.status_code == 200 and r.headers["Content-Type"].startswith(ctype)
        with open(os.path.join(ROOT, "web", name)) as f:
            assert r.text == f.read()
    for path in ("/web/", "/web/missing.js", "/web/../Makefile", "/web/index.html"):
        assert c.get(2, path).status_code == 404, path
    assert c.post(2, "/", "x").status_code == 405
    # nothing is loaded from elsewhere
    for name in ("index.html", "app.js", "style.css"):
        with open(os.path.join(ROOT, "web", name)) as f:
            text = f.read()
        assert not re.search(r'(src|href)\s*=\s*"(https?:)?//', text), name
        assert not re.search(r"url\(\s*['\"]?(https?:)?//", text), name
        assert "@import" not in text


# ---- deployment ------------------------------------------------------------------------------

class NotifySocket:
    def __init__(self, path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.settimeout(0.2)
        self.messages = []

    def drain(self):
        while True:
            try:
                self.messages.append(self.sock.recv(4096).decode())
            except socket.timeout:
                return self.messages

    def wait(self, pred, timeout=15, what="notification"):
        wait_for(lambda: pred(self.drain()), timeout, what)
        return self.messages


def test_systemd_notify(make_cluster, tmp_path):
    c = make_cluster(nodes=3, start=False)
    socks = {i: NotifySocket(str(tmp_path / f"notify{i}")) for i in (1, 2, 3)}
    for i in (1, 2, 3):
        os.environ["NOTIFY_SOCKET"] = socks[i].path
        os.environ["WATCHDOG_USEC"] = "400000"
        try:
            c.start(i, wait=False)
        finally:
            del os.environ["NOTIFY_SOCKET"], os.environ["WATCHDOG_USEC"]
    for i in (1, 2, 3):
        c.wait_http(i)
    lid = c.wait_leader()
    term = c.stat(lid)["raft_status"]["term"]
    for i in (1, 2, 3):
        msgs = socks[i].wait(lambda m: any(f"STATUS=leader {lid}" in x for x in m),
                             what=f"leader status from node {i}")
        first = msgs[0].split("\n")
        assert first[0] == "READY=1" and first[1].startswith("STATUS="), msgs
        want = f"STATUS=leader {lid}{' (this node)' if i == lid else ''}, term {term}"
        assert want in msgs, (want, msgs)
        socks[i].wait(lambda m: m.count("WATCHDOG=1") >= 2, what="watchdog pings")
    # a leader change shows up in the status
    # nobody reads the other sockets meanwhile: their queues fill up with watchdog pings, and
    # the nodes must go on regardless (a full queue drops a message, it never blocks the loop)
    time.sleep(3)
    follower = next(i for i in (1, 2, 3) if i != lid)
    socks[lid].drain()
    c.stop(lid)
    new = c.wait_leader(among=[i for i in (1, 2, 3) if i != lid])
    socks[follower].wait(lambda m: any(x.startswith(f"STATUS=leader {new}") for x in m),
                         what="new leader status")
    stopped = socks[lid].drain()
    assert stopped[-1] == "STOPPING=1\nSTATUS=stopping", stopped


def test_systemd_unit(tmp_path):
    path = os.path.join(ROOT, "deploy", "clustermgr.service")
    with open(path) as f:
        text = f.read()
    unit = {}
    for line in text.splitlines():
        if "=" in line and not line.startswith("#"):
            k, v = line.split("=", 1)
            unit.setdefault(k.strip(), []).append(v.strip())
    assert unit["Type"] == ["notify"]
    assert unit["NotifyAccess"] == ["main"]
    assert any("--check" in v for v in unit["ExecStartPre"])
    assert unit["ExecStart"][0].split()[1:] == ["-f", "/etc/clustermgr/clustermgr.conf"]
    assert "WatchdogSec" in unit and unit["KillSignal"] == ["SIGTERM"]
    if shutil.which("systemd-analyze"):
        # systemd's own parser, with the binary path pointed at this build
        upath = tmp_path / "clustermgr.service"
        upath.write_text(text.replace("/usr/local/bin/clustermgr", os.path.abspath(BINARY)))
        p = subprocess.run(["systemd-analyze", "verify", "--man=no", str(upath)],
                           capture_output=True, timeout=60)
        out = (p.stdout + p.stderr).decode()
        assert "clustermgr.service:" not in out, out


def test_example_configs_pass_check():
    d = os.path.join(ROOT, "deploy", "examples")
    confs = sorted(f for f in os.listdir(d) if f.endswith(".conf"))
    assert len(confs) == 3
    ids, https, rafts = set(), set(), set()
    for name in confs:
        p = subprocess.run([BINARY, "-f", os.path.join(d, name), "--check"], capture_output=True,
                           timeout=10)
        out = (p.stdout + p.stderr).decode()
        assert p.returncode == 0 and ": ok (node" in out, out
        m = re.search(r"node (\d+), cluster (\d+), http (\S+), raft (\S+), data", out)
        ids.add(m.group(1)), https.add(m.group(3)), rafts.add(m.group(4))
    assert ids == {"1", "2", "3"} and len(https) == 3 and len(rafts) == 3


# ---- recovery after a loss of quorum ---------------------------------------------------------

def test_force_new_cluster_after_losing_two_of_three(make_cluster):
    c = make_cluster(nodes=3, max_nodes=5, snapshot_threshold=64)
    lid = c.wait_leader()
    for k in range(150):  # enough for snapshots and a log after them
        assert c.post(lid, "/config/set", {"key": f"k{k:03d}", "value": str(k)}).status_code == 200
    r = c.post(lid, "/bid/alloc", {"count": 1000})
    assert r.status_code == 200, r.text
    last_bid = r.json()["end_bid"]
    c.wait_applied(c.stat(lid)["raft_status"]["commit"])

    survivor = next(i for i in (1, 2, 3) if i != lid)
    for i in (1, 2, 3):
        if i != survivor:
            c.kill(i)
    wait_for(lambda: c.get(survivor, "/readyz").status_code == 503, what="quorum lost")
    assert c.post(survivor, "/config/set", {"key": "lost", "value": "1"}).status_code == 907

    run = lambda *a: subprocess.run([BINARY, "-f", c.config_path(survivor), *a],  # noqa: E731
                                    capture_output=True, timeout=30)
    p = run("--force-new-cluster")  # still running: refused
    assert p.returncode != 0 and b"stop the node" in p.stderr, p.stderr
    c.stop(survivor)
    p = run("--force-new-cluster", "--peers", "9=127.0.0.1:1")
    assert p.returncode != 0 and b"must include this node" in p.stderr, p.stderr
    p = run("--force-new-cluster")
    assert p.returncode == 0, p.stdout + p.stderr
    assert f"{survivor}={c.raft_addr(survivor)}".encode() in p.stdout

    c.start(survivor)
    assert c.wait_leader(among=[survivor]) == survivor
    for k in (0, 77, 149):
        r = c.get(survivor, f"/config/get?key=k{k:03d}")
        assert (r.status_code, r.json()) == (200, str(k))
    assert c.post(survivor, "/config/set", {"key": "after", "value": "recovered"}).status_code == 200
    r = c.post(survivor, "/bid/alloc", {"count": 1})
    assert r.status_code == 200
    assert r.json()["start_bid"] > last_bid
    st = c.stat(survivor)["raft_status"]
    assert [p["id"] for p in st["peers"]] == [survivor]

    # grow back to three with two new nodes
    for new in (4, 5):
        c.start(new)
        body = {"peer_id": new, "host": c.raft_addr(new), "member_type": 1,
                "node_host": c.http(new)}
        assert c.post(survivor, "/member/add", body).status_code == 200
        wait_for(lambda: c.get(new, "/config/get?key=after").status_code == 200,
                 what=f"node {new} caught up")
        assert c.post(survivor, "/member/promote", {"peer_id": new}).status_code == 200
    peers = {p["id"]: p for p in c.stat(survivor)["raft_status"]["peers"]}
    assert set(peers) == {survivor, 4, 5} and not any(p["isLearner"] for p in peers.values())
    # snapshots after the recovery, then every node restarts from its own disk
    lid = c.wait_leader(among=[survivor, 4, 5])
    for k in range(200):
        assert c.post(lid, "/config/set", {"key": f"p{k:03d}", "value": str(k)}).status_code == 200
    for i in (survivor, 4, 5):
        c.stop(i)
        c.start(i)
        c.wait_leader(among=[survivor, 4, 5])
        r = c.get(i, "/config/get?key=p199")
        assert (r.status_code, r.json()) == (200, "199"), (i, r.text)
        assert c.get(i, "/config/get?key=k042").json() == "42"
    # the new majority works without the survivor
    c.kill(survivor)
    lid2 = c.wait_leader(among=[4, 5])
    assert lid2 in (4, 5)
    assert c.get(lid2, "/config/get?key=k100").json() == "100"
    assert c.post(lid2, "/config/set", {"key": "final", "value": "ok"}).status_code == 200
