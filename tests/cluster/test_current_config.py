"""The config of the current CubeFS release (v3.5.x) next to the 2022 one: a cluster started from
the v3.5.1 sample shape, task switches as current clients use them and as 2022 clients did, the
system keys, the config store seen through the KV routes, /stat's read_only and applyingLength,
empty request bodies, and a file whose code-mode policies are all disabled."""
import base64
import json
import random
import time
import urllib.parse

from test_disks import Sim

# what the v3.5.1+ clients poll (common/taskswitch) and blobnode's data_inspect
CURRENT_SWITCHES = ["disk_repair", "balance", "disk_drop", "volume_inspect", "shard_repair",
                    "blob_delete", "data_inspect"]
SYSTEM_KEYS = ["code_mode", "volume_reserve_size", "volume_chunk_size"]


def current_shape(c, top=None, cluster_config=None):
    """Rewrite every node's config into the shape of the v3.5.1 sample clustermgr.conf: db_path,
    raft_node_config.members instead of peers and nodes, allocatable_size, the disk_mgr_config
    trio, no cluster_config, and the Go-only fields that file and later releases carry."""
    for i, cfg in c.configs.items():
        sc = cfg["raft_config"]["server_config"]
        nc = cfg["raft_config"]["raft_node_config"]
        peers, nodes = sc.pop("peers"), nc.pop("nodes")
        nc["members"] = [{"id": int(k), "host": v, "learner": False, "node_host": nodes[k]}
                         for k, v in sorted(peers.items())]
        nc.update(flush_num_interval=10000, flush_time_interval_s=10, truncate_num_interval=10,
                  apply_flush=False)
        sc.update(use_rocksdb=False, disable_proposal_forwarding=False, server_timeout_min=10)
        cfg["raft_config"]["snapshot_patch_num"] = 64
        cfg.pop("cluster_config")
        if cluster_config is not None:
            cfg["cluster_config"] = cluster_config
        cfg.update(db_path=f"{c.dir}/db{i}", kv_db_path=f"{c.dir}/kv{i}", db_cache_size=1 << 28,
                   consistent_check_interval_m=360, consul_token="", consul_token_file="")
        cfg["volume_mgr_config"].update(allocatable_size=1048576, alloc_factor=5, shard_num=16)
        cfg["disk_mgr_config"] = {"refresh_interval_s": 10, "rack_aware": False,
                                  "host_aware": False, "reserved_space": 0,
                                  "copy_set_configs": {"blobnode": {"hdd": {"node_set_cap": 108}}}}
        cfg.update(top or {})
        c.write_config(i)


def start_current(make_cluster, nodes=3, top=None, cluster_config=None, **kw):
    c = make_cluster(start=False, nodes=nodes, **kw)
    current_shape(c, top, cluster_config)
    c.start_all()
    return c


def b64(v):
    return base64.b64encode(v if isinstance(v, bytes) else v.encode()).decode()


def q(key):
    return urllib.parse.quote(key, safe="")


def cfg_get(c, node, key):
    return c.get(node, "/config/get?key=" + q(key))


def kv_get(c, node, key):
    return c.get(node, "/kv/get/" + q(key))


def raw_post(c, node, path, headers):
    return c.raw_post(node, path, headers)


def switch_client(c, node, key):
    """What a v3.5.1+ daemon does each poll (common/taskswitch): read the key; on an error whose
    message contains "Not Found", write it as "false". Returns the value it ends up with."""
    r = cfg_get(c, node, key)
    if r.status_code != 200:
        assert r.status_code == 404 and "Not Found" in r.json()["error"], (r.status_code, r.text)
        w = c.post(node, "/config/set", {"key": key, "value": "false"})
        assert (w.status_code, w.content) == (200, b""), w.text
        r = cfg_get(c, node, key)
    assert r.status_code == 200, r.text
    return r.json()


# ---- a cluster in the shape of the current release ------------------------------------------

def test_current_sample_config_forms_a_cluster(make_cluster):
    c = start_current(make_cluster)
    lid = c.wait_leader()
    follower = next(i for i in (1, 2, 3) if i != lid)
    # members gave the raft addresses and the HTTP ones: a follower forwards writes
    r = c.post(follower, "/config/set", {"key": "from_follower", "value": "1"})
    assert (r.status_code, r.content) == (200, b""), r.text
    for i in (1, 2, 3):
        st = c.stat(i)
        assert st["leader_host"] == c.http(lid)
        assert cfg_get(c, i, "from_follower").json() == "1"
    # without cluster_config the forced keys are still there
    assert cfg_get(c, 1, "volume_reserve_size").json() == "10485760"
    assert cfg_get(c, 1, "volume_chunk_size").json() == "16777216"
    assert json.loads(cfg_get(c, 1, "code_mode").json())[0]["mode_name"] == "EC3P3"
    log = c.log_text(1)
    for field in ("db_path", "kv_db_path", "apply_flush", "use_rocksdb", "shard_num",
                  "reserved_space", "consul_token"):
        assert f"{field}: it configures the Go implementation only" in log, field


def test_current_clients_create_missing_switches(make_cluster):
    c = start_current(make_cluster)
    lid = c.wait_leader()
    # nothing is pre-created: every switch starts missing, with the body current clients match
    for key in CURRENT_SWITCHES + ["vol_inspect"]:
        for i in (1, 2, 3):
            r = cfg_get(c, i, key)
            assert (r.status_code, r.json()) == (404, {"error": "Not Found"}), (key, r.text)
    for n, key in enumerate(CURRENT_SWITCHES):
        assert switch_client(c, 1 + n % 3, key) == "false"
    for i in (1, 2, 3):
        for key in CURRENT_SWITCHES:
            assert cfg_get(c, i, key).json() == "false"
    # an operator turns them on in either spelling; the stored spelling is the current one
    for value, want in (("Enable", "true"), ("TRUE", "true"), ("disable", "false"),
                        ("true", "true")):
        assert c.post(lid, "/config/set", {"key": "balance", "value": value}).status_code == 200
        assert [cfg_get(c, i, "balance").json() for i in (1, 2, 3)] == [want] * 3
    # vol_inspect (2022) and volume_inspect (current) are one switch
    assert c.post(lid, "/config/set", {"key": "vol_inspect", "value": "Enable"}).status_code == 200
    for i in (1, 2, 3):
        assert cfg_get(c, i, "volume_inspect").json() == "true"
        assert cfg_get(c, i, "vol_inspect").json() == "true"
    assert c.post(lid, "/config/delete?key=volume_inspect").status_code == 200
    for key in ("volume_inspect", "vol_inspect"):
        assert cfg_get(c, 2, key).status_code == 404
    # a value that is no switch value is kept as given (any value but "true" is off to clients)
    assert c.post(lid, "/config/set", {"key": "disk_drop", "value": "later"}).status_code == 200
    assert cfg_get(c, 3, "disk_drop").json() == "later"
    # the dashboard data shows the current spelling
    sw = c.get(2, "/dashboard/data").json()["switches"]
    assert sw["balance"] == "true" and sw["vol_inspect"] is None


def test_switch_spelling_of_2022_files(make_cluster):
    # the test clusters' 2022-shaped config sets the six switches to Disable in cluster_config
    c = make_cluster(nodes=3)
    lid = c.wait_leader()
    assert cfg_get(c, 1, "balance").json() == "Disable"
    assert cfg_get(c, 1, "volume_inspect").json() == "Disable"  # the other name of vol_inspect
    for value, want in (("true", "Enable"), ("false", "Disable"), ("ENABLE", "Enable")):
        assert c.post(lid, "/config/set", {"key": "blob_delete", "value": value}).status_code == 200
        assert [cfg_get(c, i, "blob_delete").json() for i in (1, 2, 3)] == [want] * 3
    assert c.post(lid, "/config/set", {"key": "volume_inspect", "value": "true"}).status_code == 200
    assert cfg_get(c, 3, "vol_inspect").json() == "Enable"
    # a 2022 client reads a missing key as "unchanged"; the key it never had stays missing
    assert cfg_get(c, 2, "data_inspect").status_code == 404
    # /config/list keeps its 2022 shape
    lst = c.get(2, "/config/list").json()
    assert list(lst) == ["configs"]
    assert lst["configs"]["blob_delete"] == "Enable"
    assert lst["configs"]["vol_inspect"] == lst["configs"]["volume_inspect"] == "Enable"
    assert list(lst["configs"]) == sorted(lst["configs"])


def test_explicit_switch_format_wins(make_cluster):
    # a current-shaped file that asks for the 2022 spelling, with a true/false default
    c = start_current(make_cluster, nodes=1, top={"task_switch_format": "2022"},
                      cluster_config={"balance": "true", "vol_inspect": "false"})
    c.wait_leader()
    assert cfg_get(c, 1, "balance").json() == "Enable"
    assert cfg_get(c, 1, "volume_inspect").json() == "Disable"
    assert c.post(1, "/config/set", {"key": "data_inspect", "value": "true"}).status_code == 200
    assert cfg_get(c, 1, "data_inspect").json() == "Enable"


# ---- system keys --------------------------------------------------------------------------

def test_system_keys_cannot_be_deleted_or_written_through_kv(make_cluster):
    c = start_current(make_cluster)
    lid = c.wait_leader()
    follower = next(i for i in (1, 2, 3) if i != lid)
    before = {k: cfg_get(c, 1, k).json() for k in SYSTEM_KEYS}
    for node in (lid, follower):
        for key in SYSTEM_KEYS:
            r = c.post(node, "/config/delete?key=" + key)
            assert (r.status_code, r.json()) == (933, {"error": "reject delete system config"})
            r = c.post(node, "/kv/delete/" + key)
            assert (r.status_code, r.json()) == (933, {"error": "reject delete system config"})
            r = c.post(node, "/kv/set", {"key": key, "value": b64("x")})
            assert (r.status_code, r.json()) == (400, {"error": "Illegal Arguments"}), key
            r = c.post(node, "/kv/set/" + key, {"key": key, "value": b64("x")})
            assert (r.status_code, r.json()) == (400, {"error": "Illegal Arguments"}), key
    r = c.post(follower, "/config/set", {"key": "code_mode", "value": "[]"})
    assert (r.status_code, r.json()) == (400, {"error": "Illegal Arguments"})
    assert {k: cfg_get(c, 2, k).json() for k in SYSTEM_KEYS} == before
    for key in SYSTEM_KEYS:
        assert kv_get(c, 3, key).status_code == 404  # defaults are not stored values
    # volume_reserve_size may still be set (v3.5.3 refuses code_mode only), not deleted
    assert c.post(lid, "/config/set", {"key": "volume_reserve_size",
                                       "value": "20971520"}).status_code == 200
    assert cfg_get(c, 1, "volume_reserve_size").json() == "20971520"
    assert c.post(lid, "/config/delete?key=volume_reserve_size").status_code == 933
    assert cfg_get(c, 2, "volume_reserve_size").json() == "20971520"


# ---- one store behind /config and /kv ---------------------------------------------------------

def test_config_and_kv_routes_agree_after_any_sequence(make_cluster):
    # "init_volume_num" has a default from the file, the others do not
    c = start_current(make_cluster, cluster_config={"init_volume_num": 100})
    c.wait_leader()
    keys = ["k", "ünï/ké y", "balance", "vol_inspect", "volume_inspect", "init_volume_num"]
    values = ["", "v", "Enable", "false", "ça va", "x" * 3000]
    rnd = random.Random(7)

    def check(key):
        node = rnd.choice((1, 2, 3))
        kr, cr = kv_get(c, node, key), cfg_get(c, node, key)
        if kr.status_code == 200:
            stored = base64.b64decode(kr.json()["value"])
            assert (cr.status_code, cr.json()) == (200, stored.decode()), (key, kr.text, cr.text)
        else:
            assert kr.status_code == 404, kr.text
            if key == "init_volume_num":  # the file's default, which only /config shows
                assert (cr.status_code, cr.json()) == (200, "100"), cr.text
            else:
                assert (cr.status_code, cr.json()) == (404, {"error": "Not Found"}), (key, cr.text)
        return kr.status_code, kr.text

    for step in range(120):
        key, value, node = rnd.choice(keys), rnd.choice(values), rnd.choice((1, 2, 3))
        op = rnd.randrange(4)
        if op == 0:
            r = c.post(node, "/config/set", {"key": key, "value": value})
        elif op == 1:
            r = c.post(node, "/config/delete?key=" + q(key))
        elif op == 2:
            r = c.post(node, "/kv/set", {"key": key, "value": b64(value)})
        else:
            r = c.post(node, "/kv/delete/" + q(key))
        assert (r.status_code, r.content) == (200, b""), (step, key, r.text)
        check(key)
        # the two names of the volume-inspection switch never differ
        assert check("vol_inspect") == check("volume_inspect")

    # the rules the sequence relies on, once each
    assert c.post(1, "/config/set", {"key": "k", "value": "through config"}).status_code == 200
    assert base64.b64decode(kv_get(c, 2, "k").json()["value"]) == b"through config"
    assert c.post(1, "/kv/set", {"key": "k", "value": b64("through kv")}).status_code == 200
    assert cfg_get(c, 3, "k").json() == "through kv"
    assert c.post(2, "/config/set", {"key": "k", "value": ""}).status_code == 200  # empty: deletes
    assert kv_get(c, 1, "k").status_code == 404 and cfg_get(c, 1, "k").status_code == 404
    assert c.post(2, "/kv/set", {"key": "k", "value": ""}).status_code == 200  # empty KV value
    assert kv_get(c, 1, "k").json() == {"value": ""} and cfg_get(c, 1, "k").json() == ""
    # a KV value that is not UTF-8 reads through /config with U+FFFD, as Go renders it
    assert c.post(3, "/kv/set", {"key": "k", "value": b64(b"a\xffb")}).status_code == 200
    assert cfg_get(c, 1, "k").json() == "a\ufffdb"
    assert c.post(1, "/kv/delete/k").status_code == 200
    assert c.post(1, "/config/delete?key=init_volume_num").status_code == 200
    assert cfg_get(c, 1, "init_volume_num").json() == "100"
    # the same store, also for listing
    assert c.post(1, "/config/set", {"key": "list-me", "value": "1"}).status_code == 200
    kvs = c.get(2, "/kv/list?prefix=list-").json()["kvs"]
    assert kvs == [{"key": "list-me", "value": b64("1")}]


def test_config_values_survive_restart_and_snapshot_install(make_cluster):
    c = make_cluster(start=False, nodes=3, snapshot_threshold=16)
    current_shape(c)
    c.start_all()
    lid = c.wait_leader()
    assert c.post(lid, "/config/set", {"key": "vol_inspect", "value": "true"}).status_code == 200
    assert c.post(lid, "/kv/set", {"key": "shared", "value": b64("kv")}).status_code == 200
    late = next(i for i in (1, 2, 3) if i != lid)
    c.stop(late)
    for k in range(60):  # several snapshots while the node is away
        assert c.post(lid, "/config/set", {"key": f"c{k}", "value": str(k)}).status_code == 200
    assert c.post(lid, "/config/set", {"key": "shared", "value": "config"}).status_code == 200
    c.start(late)
    c.wait_applied(c.stat(c.wait_leader())["raft_status"]["commit"])
    for i in (1, 2, 3):
        assert cfg_get(c, i, "volume_inspect").json() == "true"
        assert base64.b64decode(kv_get(c, i, "vol_inspect").json()["value"]) == b"true"
        assert base64.b64decode(kv_get(c, i, "shared").json()["value"]) == b"config"
        assert cfg_get(c, i, "c59").json() == "59"
    # every node holds the same state: equal snapshots at an equal index
    end = time.time() + 20
    while True:
        dumps = [c.get(i, "/snapshot/dump") for i in (1, 2, 3)]
        assert all(d.status_code == 200 for d in dumps)
        if len({d.headers["Raft-Snapshot-Index"] for d in dumps}) == 1:
            break
        assert time.time() < end, [d.headers["Raft-Snapshot-Index"] for d in dumps]
        time.sleep(0.2)
    assert len({d.content for d in dumps}) == 1
    c.shutdown()
    c.start_all()
    c.wait_leader()
    assert cfg_get(c, late, "shared").json() == "config"
    assert cfg_get(c, late, "vol_inspect").json() == "true"


# ---- /stat ----------------------------------------------------------------------------------

def test_stat_read_only_and_applying_length(make_cluster):
    c = start_current(make_cluster, nodes=1, top={"readonly": True})
    c.wait_leader()
    st = c.stat(1)
    assert st["read_only"] is True
    assert list(st)[:3] == ["leader_host", "read_only", "raft_status"]
    rs = st["raft_status"]
    keys = list(rs)
    assert keys.index("applyingLength") == keys.index("transferee") + 1
    assert keys[-1] == "peers"
    assert rs["applyingLength"] == rs["commit"] - rs["applied"] == 0
    c2 = make_cluster(nodes=3)
    lid = c2.wait_leader()
    for i in (1, 2, 3):
        st = c2.stat(i)
        assert st["read_only"] is False
        rs = st["raft_status"]
        assert isinstance(rs["applyingLength"], int)
        assert rs["applyingLength"] == max(0, rs["commit"] - rs["applied"])
    assert c2.stat(lid)["raft_status"]["applyingLength"] == 0


# ---- empty request bodies -----------------------------------------------------------------

def test_empty_bodies_of_the_current_client(make_cluster):
    c = start_current(make_cluster)
    lid = c.wait_leader()
    follower = next(i for i in (1, 2, 3) if i != lid)
    for node in (lid, follower):  # the follower forwards the empty body
        assert c.post(lid, "/config/set", {"key": "gone", "value": "v"}).status_code == 200
        assert c.post(lid, "/kv/set", {"key": "kgone", "value": b64("v")}).status_code == 200
        status, body = raw_post(c, node, "/config/delete?key=gone", {"Content-Length": "0"})
        assert (status, body) == (200, b""), body
        status, body = raw_post(c, node, "/kv/delete/kgone", {"Content-Length": "0"})
        assert (status, body) == (200, b""), body
        assert cfg_get(c, 1, "gone").status_code == 404
        assert kv_get(c, 2, "kgone").status_code == 404
        # with the Content-Type the Go client sets and a system key: the same error as with a body
        status, body = raw_post(c, node, "/config/delete?key=code_mode",
                                {"Content-Length": "0", "Content-Type": "application/json"})
        assert (status, json.loads(body)) == (933, {"error": "reject delete system config"})


# ---- code-mode policies all disabled ------------------------------------------------------

def test_all_policies_disabled_creates_no_volumes(make_cluster):
    c = make_cluster(start=False, nodes=1,
                     extra={"volume_mgr_config": {"min_allocable_volume_count": 2},
                            "disk_mgr_config": {"heartbeat_expire_interval_s": 3}})
    for pol in c.configs[1]["code_mode_policies"]:
        pol["enable"] = False
    c.write_config(1)
    c.start_all()
    c.wait_leader()
    assert "no code_mode_policies entry is enabled" in c.log_text(1)
    sim = Sim(c, hosts=3, disks=2).start()
    try:
        sim.wait(lambda: sim.stats()["registered"] == 6, what="registration")
        time.sleep(3)  # several pool checks of the leader
        st = c.stat(1)
        assert st["volume_stat"]["total_volume"] == 0
        assert sim.stats()["calls"]["create"] == 0
        assert st["space_stat"]["total_disk"] == 6
        r = c.post(1, "/volume/alloc", {"code_mode": 11, "count": 1})
        assert r.status_code in (917, 928), r.text
        assert c.get(1, "/readyz").status_code == 200
        # the policies are published as they are
        assert not any(p["enable"] for p in json.loads(cfg_get(c, 1, "code_mode").json()))
        assert c.procs[1].poll() is None
    finally:
        assert sim.stop() == 0


# ---- refused files ------------------------------------------------------------------------

def test_replica_modes_and_inconsistent_members_are_refused(make_cluster):
    import subprocess
    from cmcluster import BINARY
    c = make_cluster(start=False, nodes=1)
    base = json.loads(json.dumps(c.configs[1]))
    cases = []
    d = json.loads(json.dumps(base))
    d["code_mode_policies"][1]["mode_name"] = "Replica3OneAZ"
    cases.append((d, "replica code modes are not supported yet"))
    d = json.loads(json.dumps(base))
    nc = d["raft_config"]["raft_node_config"]
    nc["members"] = [{"id": 1, "host": "127.0.0.1:1", "learner": False, "node_host": nc["nodes"]["1"]}]
    cases.append((d, "raft_config.raft_node_config.members and raft_config.server_config.peers "
                     "disagree about node 1"))
    for n, (cfg, needle) in enumerate(cases):
        path = f"{c.dir}/bad{n}.conf"
        with open(path, "w") as f:
            json.dump(cfg, f)
        p = subprocess.run([BINARY, "-f", path], capture_output=True, timeout=10)
        out = (p.stdout + p.stderr).decode()
        assert p.returncode != 0 and needle in out and "refusing to start" in out, out


# ---- the status page with true/false switches ---------------------------------------------

def test_status_page_toggles_current_switches(make_cluster, tmp_path):
    from test_dashboard import CHROMIUM, Browser
    assert CHROMIUM, "chromium is required (scripts/deps.sh installs it)"
    c = start_current(make_cluster)
    lid = c.wait_leader()
    follower = next(i for i in (1, 2, 3) if i != lid)
    assert c.post(lid, "/config/set", {"key": "blob_delete", "value": "true"}).status_code == 200
    state = """(() => { const s = {}; document.querySelectorAll('#switches input[data-key]')
        .forEach(i => { s[i.dataset.key] = [i.checked,
            document.getElementById('state-' + i.dataset.key).textContent]; }); return s; })()"""
    b = Browser(str(tmp_path))
    try:
        b.call("Page.navigate", url=c.url(follower, "/"))
        b.wait("document.body && document.body.dataset.loaded === '1'")
        sw = b.eval(state)
        assert sw["blob_delete"] == [True, "true"]  # "true" reads as on
        assert sw["balance"] == [False, "unset"]  # nothing pre-created
        # a click on a missing switch creates it, in the cluster's spelling
        b.click("label.toggle:has(#switch-balance)")
        b.wait("document.getElementById('state-balance').textContent === 'true'")
        assert [cfg_get(c, i, "balance").json() for i in (1, 2, 3)] == ["true"] * 3
        assert "balance set to true" in b.eval("document.getElementById('switch-msg').textContent")
        b.click("label.toggle:has(#switch-balance)")
        b.wait("document.getElementById('state-balance').textContent === 'false'")
        assert cfg_get(c, lid, "balance").json() == "false"
        # a value stored in the 2022 spelling (raw, through the KV routes) reads as on; the
        # page writes in that spelling and the server stores the configured one
        assert c.post(lid, "/kv/set", {"key": "vol_inspect", "value": b64("Enable")}).status_code == 200
        b.wait("document.getElementById('state-vol_inspect').textContent === 'Enable'")
        assert b.eval("document.getElementById('switch-vol_inspect').checked") is True
        b.click("label.toggle:has(#switch-vol_inspect)")
        b.wait("document.getElementById('state-vol_inspect').textContent === 'false'")
        assert cfg_get(c, follower, "volume_inspect").json() == "false"
        time.sleep(2.5)  # the next refresh shows the replicated state
        sw = b.eval(state)
        assert sw["balance"] == [False, "false"] and sw["vol_inspect"] == [False, "false"]
    finally:
        b.close()
