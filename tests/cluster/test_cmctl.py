"""cmctl end to end against real clusters: every command group, exit codes, help, and failover
across --host when hosts are down or have no leader."""
import base64
import json
import os
import subprocess
import time

import requests

from cmcluster import ROOT, BUILD

CMCTL = os.path.join(ROOT, BUILD, "cmctl")
GROUPS = ["stat", "member", "config", "task", "disk", "node", "volume", "chunk", "service", "kv", "bid",
          "snapshot", "raw"]
# the 2022 names, then the current ones (volume_inspect is vol_inspect; data_inspect is the
# blobnode's); the test clusters spell them Enable/Disable (task_switch_format inferred "2022")
SWITCHES = ["disk_repair", "balance", "disk_drop", "blob_delete", "shard_repair", "vol_inspect",
            "volume_inspect", "data_inspect"]


def run(*args, hosts=None, stdin=None, env=None):
    cmd = [CMCTL] + (["--host", hosts] if hosts else []) + list(args)
    p = subprocess.run(cmd, capture_output=True, input=stdin, timeout=60, env=env)
    return p.returncode, p.stdout, p.stderr.decode(errors="replace")


def hosts_of(c, *nodes):
    return ",".join(c.http(i) for i in nodes)


def test_help_and_usage_errors():
    rc, out, _ = run("help")
    assert rc == 0
    text = out.decode()
    for g in GROUPS:
        assert f"\n  {g} " in text
    assert "exit codes" in text and "--host" in text
    for g in GROUPS:
        rc, out, err = run("help", g)
        assert rc == 0, (g, err)
        page = out.decode()
        assert page.startswith(f"NAME\n    cmctl {g}")
        assert "SYNOPSIS" in page and "DESCRIPTION" in page and "EXIT STATUS" in page
    rc, out, _ = run("kv", "set", "--help")
    assert rc == 0 and b"kv set <key>" in out and b"kv get" not in out
    rc, out, _ = run("--help")
    assert rc == 0 and b"commands:" in out
    assert run()[0] == 2
    assert run("frobnicate")[0] == 2
    assert run("kv", "frobnicate")[0] == 2
    assert run("kv")[0] == 2
    assert run("kv", "get")[0] == 2                    # missing argument
    assert run("kv", "get", "a", "b")[0] == 2          # too many
    assert run("bid", "alloc", "ten")[0] == 2
    assert run("bid", "alloc", "-1")[0] == 2
    assert run("task", "enable", "nosuch")[0] == 2
    assert run("stat", "--frob")[0] == 2
    assert run("stat", "--timeout")[0] == 2
    assert run("stat", "--json=1")[0] == 2
    assert run("help", "nosuch")[0] == 2
    rc, out, _ = run("version")
    assert rc == 0 and out.startswith(b"cmctl ")


def test_commands_end_to_end(make_cluster, tmp_path):
    c = make_cluster(nodes=3)
    h = hosts_of(c, 2, 1, 3)

    def ok(*args, **kw):
        rc, out, err = run(*args, hosts=h, **kw)
        assert rc == 0, (args, rc, err)
        return out.decode(errors="replace")

    # stat
    text = ok("stat")
    lid = c.wait_leader()
    assert f"leader      {lid}  {c.http(lid)}" in text and "this node   2" in text
    assert json.loads(ok("stat", "--json"))["raft_status"]["nodeId"] == 2
    text = ok("--host", c.http(lid), "stat")  # the last --host wins
    assert "ProgressState" in text  # the leader shows replication progress

    # config and task switches
    assert ok("config", "set", "demo", "v 1") == ""
    assert ok("config", "get", "demo") == "v 1\n"
    assert ok("config", "get", "demo", "--json") == '"v 1"\n'
    assert "demo\tv 1\n" in ok("config", "list")
    assert "configs" in json.loads(ok("config", "list", "--json"))
    ok("config", "del", "demo")
    rc, _, err = run("config", "get", "demo", hosts=h)
    assert rc == 4 and "404 Not Found" in err
    for sw in SWITCHES:
        ok("task", "enable", sw)
        assert ok("task", "status", sw) == "Enable\n"
        assert c.get(3, f"/config/get?key={sw}").json() == "Enable"
        ok("task", "disable", sw)
    lines = ok("task", "status").splitlines()
    assert [l.split() for l in lines] == [[sw, "Disable"] for sw in SWITCHES]
    rc, _, err = run("config", "set", "code_mode", "x", hosts=h)
    assert rc == 1 and "400" in err

    # services
    ok("service", "register", "1", "ALLOCATOR", "http://10.0.0.1:9100", "z0", "--timeout-s", "60")
    assert json.loads(ok("service", "get", "ALLOCATOR"))["nodes"][0]["host"] == "http://10.0.0.1:9100"
    assert json.loads(ok("service", "list"))["nodes"][0]["name"] == "ALLOCATOR"
    ok("service", "heartbeat", "ALLOCATOR", "http://10.0.0.1:9100")
    ok("service", "unregister", "ALLOCATOR", "http://10.0.0.1:9100")
    assert json.loads(ok("service", "list")) == {"nodes": None}
    rc, _, err = run("service", "heartbeat", "ALLOCATOR", "http://10.0.0.1:9100", hosts=h)
    assert rc == 4
    rc, _, err = run("service", "register", "1", "A", "http://10.0.0.1:1", "nosuch-idc", hosts=h)
    assert rc == 1 and "923" in err and "invalid idc" in err

    # kv
    ok("kv", "set", "a/b c", "hello world")
    assert ok("kv", "get", "a/b c") == "hello world"
    assert ok("kv", "get", "a/b c", "--base64") == base64.b64encode(b"hello world").decode() + "\n"
    assert json.loads(ok("kv", "get", "a/b c", "--json")) == {"value": base64.b64encode(b"hello world").decode()}
    blob = bytes(range(256)) * 50
    (tmp_path / "blob").write_bytes(blob)
    ok("kv", "set", "..", "--file", str(tmp_path / "blob"))
    rc, out, err = run("kv", "get", "..", hosts=h)
    assert rc == 0 and out == blob
    ok("kv", "set", "stdin", "--file", "-", stdin=b"\x00\x01piped")
    rc, out, _ = run("kv", "get", "stdin", hosts=h)
    assert out == b"\x00\x01piped"
    for k in range(25):
        ok("kv", "set", f"p/{k:02d}", str(k))
    page = json.loads(ok("kv", "list", "--prefix", "p/", "--count", "10"))
    assert len(page["kvs"]) == 10 and page["marker"] == "p/09"
    page = json.loads(ok("kv", "list", "--prefix", "p/", "--marker", "p/09", "--count", "3"))
    assert [e["key"] for e in page["kvs"]] == ["p/10", "p/11", "p/12"]
    everything = json.loads(ok("kv", "list", "--prefix", "p/", "--count", "4", "--all"))
    assert [e["key"] for e in everything["kvs"]] == [f"p/{k:02d}" for k in range(25)]
    ok("kv", "del", "a/b c")
    rc, out, err = run("kv", "get", "a/b c", hosts=h)
    assert (rc, out) == (4, b"") and "Not Found" in err
    rc, _, err = run("kv", "set", "k", hosts=h)
    assert rc == 2
    rc, _, err = run("kv", "set", "x" * 1025, "v", hosts=h)
    assert rc == 1 and "too long" in err

    # ids
    assert json.loads(ok("bid", "alloc", "10")) == {"start_bid": 1, "end_bid": 10}
    rc, _, err = run("bid", "alloc", "100001", hosts=h)
    assert rc == 1 and "Illegal Arguments" in err
    assert json.loads(ok("disk", "alloc-id")) == {"disk_id": 1}

    # raw
    assert json.loads(ok("raw", "GET", "/config/get?key=balance")) == "Disable"
    rc, _, err = run("raw", "GET", "/no/such/route", hosts=h)
    assert rc == 4
    rc, _, err = run("raw", "POST", "/config/set", "{bad", hosts=h)
    assert rc == 1 and "400" in err


def test_disk_commands(make_cluster):
    c = make_cluster(nodes=3)
    h = hosts_of(c, 1, 2, 3)
    rc, out, err = run("disk", "alloc-id", hosts=h)
    assert rc == 0
    disk_id = json.loads(out)["disk_id"]
    info = {"cluster_id": 1, "idc": "z0", "rack": "r1", "host": "http://127.0.0.1:8899",
            "path": "/data/d1", "status": 1, "readonly": False, "disk_id": disk_id,
            "create_time": "2022-03-24T17:33:45.123456789+08:00",
            "last_update_time": "2022-03-24T17:33:45.123456789+08:00",
            "used": 0, "free": 107374182400, "size": 107374182400, "max_chunk_cnt": 0,
            "free_chunk_cnt": 0, "used_chunk_cnt": 0}
    rc, _, err = run("disk", "add", json.dumps(info), hosts=h)
    assert rc == 0, err
    rc, out, _ = run("disk", "get", str(disk_id), hosts=h)
    assert rc == 0 and json.loads(out)["disk_id"] == disk_id
    rc, out, _ = run("disk", "list", "--all", "--count", "1", hosts=h)
    assert rc == 0 and [d["disk_id"] for d in json.loads(out)["disks"]] == [disk_id]
    rc, out, _ = run("disk", "list", "--status", "normal", hosts=h)
    assert rc == 0 and len(json.loads(out)["disks"]) == 1
    hb = {"disks": [{"disk_id": disk_id, "used": 1, "free": 107374182399, "size": 107374182400,
                     "max_chunk_cnt": 0, "free_chunk_cnt": 0, "used_chunk_cnt": 0}]}
    rc, out, err = run("disk", "heartbeat", json.dumps(hb), hosts=h)
    assert rc == 0 and json.loads(out)["disks"][0]["disk_id"] == disk_id, err
    assert run("disk", "access", str(disk_id), "true", hosts=h)[0] == 0
    assert json.loads(run("disk", "get", str(disk_id), hosts=h)[1])["readonly"] is True
    assert run("disk", "drop", str(disk_id), hosts=h)[0] == 0
    rc, _, err = run("disk", "access", str(disk_id), "false", hosts=h)
    assert rc == 1 and "932" in err  # a dropping disk keeps its readonly flag
    rc, out, _ = run("disk", "dropping", hosts=h)
    assert rc == 0 and [d["disk_id"] for d in json.loads(out)["disks"]] == [disk_id]
    assert run("disk", "dropped", str(disk_id), hosts=h)[0] == 0
    assert run("disk", "update", json.dumps(dict(info, status=1, max_chunk_cnt=5)), hosts=h)[0] == 0
    rc, _, err = run("disk", "get", "999", hosts=h)
    assert rc == 1 and "911" in err  # disk not found
    assert run("disk", "set", str(disk_id), "sideways", hosts=h)[0] == 2

    # nodes (CubeFS v3.5.1+)
    node = {"cluster_id": 1, "disk_type": "hdd", "idc": "z0", "rack": "r1", "role": 1,
            "host": "http://127.0.0.1:8898"}
    rc, out, err = run("node", "add", json.dumps(node), hosts=h)
    assert rc == 0, err
    node_id = json.loads(out)["node_id"]
    rc, out, _ = run("node", "get", str(node_id), hosts=h)
    assert rc == 0 and json.loads(out)["host"] == "http://127.0.0.1:8898"
    rc, out, _ = run("node", "topo", hosts=h)
    sets = json.loads(out)["all_node_sets"]["blobnode"]["hdd"]
    assert any(node_id in s["nodes"] for s in sets.values())
    rc, _, err = run("node", "get", "999", hosts=h)
    assert rc == 1 and "934" in err
    assert run("node", "drop", str(node_id), hosts=h)[0] == 0
    assert json.loads(run("node", "get", str(node_id), hosts=h)[1])["status"] == 2
    assert run("node", "drop", "x", hosts=h)[0] == 2


def test_volume_commands(make_cluster):
    c = make_cluster(nodes=3)
    h = hosts_of(c, 1, 2, 3)
    rc, _, err = run("volume", "get", "999", hosts=h)
    assert rc == 1 and "904" in err  # volume not exist
    assert run("volume", "list", "--all", hosts=h)[0] == 0
    assert run("volume", "list-status", "2", hosts=h)[0] == 0
    assert run("volume", "lock", "999", hosts=h)[0] == 1
    assert run("volume", "units", "1", hosts=h)[0] == 0
    assert run("volume", "allocated", "10.0.0.1", "11", hosts=h)[0] == 0


def test_member_commands(make_cluster):
    c = make_cluster(nodes=3)
    h = hosts_of(c, 1, 2, 3)
    c.start(4)  # not in the bootstrap peers: waits to be added
    rc, _, err = run("member", "add", "4", c.raft_addr(4), "--learner", "--node-host", c.http(4), hosts=h)
    assert rc == 0, err
    rc, _, err = run("member", "add", "4", c.raft_addr(4), hosts=h)
    assert rc == 1 and "910" in err  # duplicated member
    rc, _, err = run("member", "promote", "4", hosts=h)
    assert rc == 0, err
    lid = c.wait_leader()
    rc, _, err = run("member", "transfer", "4", hosts=h)
    assert rc == 0, err
    assert c.wait_leader(exclude=(lid,)) == 4
    rc, _, err = run("member", "remove", "4", hosts=h)
    assert rc == 1 and "Request Not Allow" in err  # the leader cannot be removed
    rc, _, err = run("member", "transfer", "1", hosts=h)
    assert rc == 0
    c.wait_leader(exclude=(4,))
    rc, _, err = run("member", "remove", "4", hosts=h)
    assert rc == 0, err
    assert {p["id"] for p in c.stat(c.wait_leader())["raft_status"]["peers"]} == {1, 2, 3}


def test_failover_across_hosts(make_cluster):
    c = make_cluster(nodes=3)
    dead = "127.0.0.1:1"
    # the first host refuses connections: the next one serves, for writes and reads alike
    rc, _, err = run("config", "set", "fo", "1", hosts=f"{dead},{c.http(2)}")
    assert rc == 0 and "trying" in err
    rc, out, _ = run("config", "get", "fo", hosts=f"{dead},{c.http(3)}")
    assert (rc, out) == (0, b"1\n")
    # the first host is a killed node (once the others agree on a leader: while a killed leader
    # is not yet replaced, every node answers 502 or 907 and cmctl exits 3, as it should)
    c.kill(1)
    c.wait_leader(among=[2, 3], exclude=(1,))
    for k in range(3):
        rc, out, err = run("bid", "alloc", "1", hosts=hosts_of(c, 1, 2, 3))
        assert rc == 0, err
    rc, out, _ = run("config", "get", "fo", hosts=hosts_of(c, 1, 3, 2))
    assert (rc, out) == (0, b"1\n")
    # CMCTL_HOST is the default host list
    env = dict(os.environ, CMCTL_HOST=f"{dead},{c.http(3)}")
    assert run("config", "get", "fo", env=env)[0] == 0
    # a node without a leader (907) is skipped too; with no host left the exit code is 3
    c.kill(2)
    end = time.time() + 20
    while c.stat(3)["raft_status"]["leader"] != 0 and time.time() < end:
        time.sleep(0.1)
    rc, _, err = run("config", "set", "fo", "2", hosts=f"{c.http(3)},{dead}")
    assert rc == 3 and "no host could serve" in err, (rc, err)
    rc, _, err = run("kv", "get", "x", hosts=f"{dead},127.0.0.1:2")
    assert rc == 3
    # local reads of a lone node still work
    rc, out, _ = run("stat", "--json", hosts=f"{dead},{c.http(3)}")
    assert rc == 0 and json.loads(out)["raft_status"]["nodeId"] == 3


def test_auth_secret_signs_requests(make_cluster):
    c = make_cluster(nodes=3, extra={"auth": {"enable_auth": True, "secret": "cm-test-secret"}})
    assert requests.get(c.url(1, "/config/list"), timeout=10).status_code == 403  # unsigned
    h = hosts_of(c, 2, 1, 3)
    rc, _, err = run("config", "set", "signed", "yes", hosts=h)
    assert rc == 1 and "403" in err
    rc, _, err = run("--secret", "cm-test-secret", "config", "set", "signed", "yes", hosts=h)
    assert rc == 0, err
    env = dict(os.environ, CMCTL_SECRET="cm-test-secret")
    rc, out, err = run("config", "get", "signed", hosts=h, env=env)
    assert (rc, out) == (0, b"yes\n"), err
    # keys with escapes are signed over the decoded path, as the server checks them
    rc, _, err = run("--secret", "cm-test-secret", "kv", "set", "a/b c", "v", hosts=h)
    assert rc == 0, err
    rc, out, err = run("--secret", "cm-test-secret", "kv", "get", "a/b c", hosts=h)
    assert (rc, out) == (0, b"v"), err
    rc, _, err = run("--secret", "wrong", "kv", "get", "a/b c", hosts=h)
    assert rc == 1 and "403" in err
