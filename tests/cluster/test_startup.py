"""A node that cannot start says why and exits non-zero."""
import json
import os
import socket
import subprocess

from cmcluster import BINARY, Cluster


def run(path, timeout=10):
    p = subprocess.run([BINARY, "-f", path], capture_output=True, timeout=timeout)
    return p.returncode, (p.stdout + p.stderr).decode()


def test_bad_config_files_are_refused(tmp_path):
    c = Cluster(nodes=1, workdir=str(tmp_path))
    base = c.configs[1]
    cases = [
        ("bind_host", lambda d: d.update(bind_host=":1")),
        ("cluster_id", lambda d: d.update(cluster_id="one")),
        ("nodeId", lambda d: d["raft_config"]["server_config"].pop("nodeId")),
        ("code_mode_policies", lambda d: d.update(code_mode_policies=[])),
        ("cluster_config", lambda d: d.pop("cluster_config")),
        ("idc", lambda d: d.update(idc="z0")),
    ]
    for needle, edit in cases:
        d = json.loads(json.dumps(base))
        edit(d)
        path = tmp_path / f"bad-{needle}.conf"
        path.write_text(json.dumps(d))
        rc, out = run(str(path))
        assert rc != 0 and needle in out and "refusing to start" in out, (needle, out)
    rc, out = run(str(tmp_path / "missing.conf"))
    assert rc != 0 and "cannot open" in out
    (tmp_path / "notjson.conf").write_text("{ this is not json")
    rc, out = run(str(tmp_path / "notjson.conf"))
    assert rc != 0 and "not valid JSON" in out
    rc, out = run(str(tmp_path / "node1.conf") + "x")
    assert rc != 0


def test_port_in_use_is_reported(tmp_path):
    c = Cluster(nodes=1, workdir=str(tmp_path))
    host, port = c.http(1).split(":")
    s = socket.socket()
    # SO_REUSEADDR: a connection of an earlier test in TIME_WAIT on this port must not matter,
    # only the listener (the node checks the same way)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((host, int(port)))
    s.listen(1)
    try:
        rc, out = run(c.config_path(1))
        assert rc != 0 and "HTTP port" in out and "in use" in out, out
    finally:
        s.close()
    host, port = c.raft_addr(1).split(":")
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((host, int(port)))
    s.listen(1)
    try:
        rc, out = run(c.config_path(1))
        assert rc != 0 and "raft port" in out, out
    finally:
        s.close()


def test_unwritable_data_dir_is_reported(tmp_path):
    c = Cluster(nodes=1, workdir=str(tmp_path))
    blocker = tmp_path / "file"
    blocker.write_text("x")
    c.configs[1]["raft_config"]["server_config"]["raft_wal_dir"] = str(blocker / "sub")
    c.write_config(1)
    rc, out = run(c.config_path(1))
    assert rc != 0 and "data directory" in out, out


def test_data_dir_of_another_node_is_refused(tmp_path):
    c = Cluster(nodes=3, workdir=str(tmp_path))
    os.makedirs(c.data_dir(2))
    with open(os.path.join(c.data_dir(2), "node.json"), "w") as f:
        f.write('{"node_id":7,"cluster_id":1,"member":true}')
    rc, out = run(c.config_path(2))
    assert rc != 0 and "belongs to node 7" in out, out


def test_check_flag_validates_only(tmp_path):
    c = Cluster(nodes=1, workdir=str(tmp_path))
    p = subprocess.run([BINARY, "-f", c.config_path(1), "--check"], capture_output=True, timeout=10)
    assert p.returncode == 0 and b"ok" in p.stdout
    assert not os.path.exists(c.data_dir(1))


def test_single_node_cluster_works(make_cluster):
    c = make_cluster(nodes=1, max_nodes=1)
    assert c.post(1, "/config/set", {"key": "solo", "value": "1"}).status_code == 200
    assert c.get(1, "/config/get?key=solo").json() == "1"
