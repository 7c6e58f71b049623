"""The Debian package, end to end: build it, install it on this machine, run a three-node cluster
from the installed binary in the package's layout, upgrade to a rebuilt package of a later
version, remove it, purge it.

Run by `make test-deb` (not part of `make test`): it needs root and changes the machine (a
package, the system user `clustermgr`, /etc/clustermgr, /var/lib/clustermgr), so run it on a
disposable machine or CI runner. It refuses to start when the package is installed already, and
purges what it installed at the end, also after a failure.

Nodes are started the way the unit starts them (user clustermgr, /usr/bin/clustermgr -f
/etc/clustermgr/<name>.conf, data under /var/lib/clustermgr/<name>), but directly: systemd need not
be the init of a CI container.
"""
import base64
import grp
import json
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import time

import pytest
import requests

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.path.join(ROOT, os.environ.get("CM_BUILD", "build"))
NODES = (1, 2, 3)
ETC = "/etc/clustermgr"
DATA = "/var/lib/clustermgr"

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="installs a package: needs root"),
    pytest.mark.skipif(shutil.which("dpkg-buildpackage") is None, reason="scripts/deps.sh --deb"),
]


def run(*cmd, check=True, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if check and r.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} exited {r.returncode}\n{r.stdout}\n{r.stderr}")
    return r


def apt(*args):
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    return run("apt-get", "-y", "-q", "-o", "DPkg::Lock::Timeout=600", *args, env=env)


def pkg_status():
    r = run("dpkg-query", "-W", "-f=${Status} ${Version}", "clustermgr", check=False)
    return r.stdout.strip() if r.returncode == 0 else ""


def free_ports(n):
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def build(out, bump=None):
    cmd = [os.path.join(ROOT, "scripts/build-deb.sh"), out] + (["--bump", bump] if bump else [])
    r = run(*cmd, check=False)
    assert r.returncode == 0, f"build-deb failed\n{r.stdout[-4000:]}\n{r.stderr[-4000:]}"
    deb = re.findall(r"^build-deb: (\S+\.deb)$", r.stdout, re.M)
    assert deb, r.stdout[-2000:]
    return deb[-1]


def lintian_report(deb, version):
    """build-deb.sh ran lintian on the package and failed on errors; its report, for the log."""
    with open(os.path.join(os.path.dirname(deb), f"lintian-{version}.txt")) as f:
        out = f.read()
    return out, [ln for ln in out.splitlines() if ln.startswith("E:")]


class Cluster:
    """Three nodes of the installed package on loopback, as user clustermgr."""

    def __init__(self, logdir):
        self.logdir = logdir
        ports = free_ports(6)
        self.http = {i: f"127.0.0.1:{ports[i - 1]}" for i in NODES}
        self.raft = {i: f"127.0.0.1:{ports[i + 2]}" for i in NODES}
        self.procs = {}

    def write_configs(self):
        gid = grp.getgrnam("clustermgr").gr_gid
        for i in NODES:
            cfg = {
                "bind_addr": self.http[i],
                "cluster_id": 1,
                "region": "pkg-test",
                "idc": ["z0"],
                "chunk_size": 16777216,
                "log": {"level": "info"},
                "code_mode_policies": [{"mode_name": "EC3P3", "min_size": 0, "max_size": 1024,
                                        "size_ratio": 1.0, "enable": True}],
                "cluster_config": {},
                "raft_config": {
                    "server_config": {
                        "nodeId": i,
                        "listen_port": int(self.raft[i].split(":")[1]),
                        "raft_wal_dir": f"{DATA}/node{i}",
                        "peers": {str(k): self.raft[k] for k in NODES},
                    },
                    "raft_node_config": {"nodes": {str(k): self.http[k] for k in NODES}},
                },
            }
            path = f"{ETC}/node{i}.conf"
            with open(path, "w") as f:
                f.write(f"# node {i} of the package test\n" + json.dumps(cfg, indent=2) + "\n")
            os.chown(path, 0, gid)
            os.chmod(path, 0o640)

    def start(self):
        # Type=notify: node 1 gets a notify socket, as systemd would give it (abstract, so the
        # service user can reach it)
        notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        name = f"clustermgr-pkgtest-{os.getpid()}-{time.monotonic_ns()}"
        notify.bind("\0" + name)
        notify.settimeout(30)
        for i in NODES:
            log = open(os.path.join(self.logdir, f"node{i}.log"), "a")
            env = dict(os.environ, NOTIFY_SOCKET="@" + name) if i == 1 else None
            # what the unit does: User=clustermgr, ExecStart=/usr/bin/clustermgr -f <conf>
            self.procs[i] = subprocess.Popen(
                ["setpriv", "--reuid=clustermgr", "--regid=clustermgr", "--init-groups",
                 "/usr/bin/clustermgr", "-f", f"{ETC}/node{i}.conf"],
                stdout=log, stderr=subprocess.STDOUT, cwd="/", start_new_session=True, env=env)
            log.close()
        try:
            first = notify.recv(4096).decode().split("\n")
        finally:
            notify.close()
        assert first[0] == "READY=1", first
        deadline = time.time() + 60
        while time.time() < deadline:
            leaders = set()
            for i in NODES:
                assert self.procs[i].poll() is None, f"node {i} exited: {self.log(i)}"
                try:
                    st = requests.get(f"http://{self.http[i]}/stat", timeout=2).json()
                    leaders.add(st["raft_status"]["leader"])
                except (requests.RequestException, ValueError, KeyError):
                    leaders.add(0)
            if len(leaders) == 1 and 0 not in leaders:
                return leaders.pop()
            time.sleep(0.3)
        raise AssertionError("no leader within 60 s:\n" + "\n".join(self.log(i) for i in NODES))

    def stop(self):
        for p in self.procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for i, p in self.procs.items():
            try:
                assert p.wait(timeout=30) == 0, f"node {i} stopped with {p.returncode}"
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
                raise AssertionError(f"node {i} did not stop on SIGTERM")
        self.procs = {}

    def kill(self):
        for p in self.procs.values():
            if p.poll() is None:
                p.kill()
                p.wait()
        self.procs = {}

    def log(self, i):
        with open(os.path.join(self.logdir, f"node{i}.log")) as f:
            return f.read()[-3000:]

    def hosts(self):
        return ",".join(self.http[i] for i in NODES)

    def cmctl(self, *args):
        return run("/usr/bin/cmctl", "--host", self.hosts(), *args)


def check_installed(version):
    assert pkg_status() == f"install ok installed {version}"
    assert run("/usr/bin/clustermgr", "--version").stdout.strip() == f"clustermgr {version}"
    assert f"cmctl {version}:" in run("/usr/bin/cmctl", "help").stdout
    for f in ("/usr/share/man/man8/clustermgr.8.gz", "/usr/share/man/man1/cmctl.1.gz",
              "/usr/share/doc/clustermgr/operations.md.gz", "/usr/share/doc/clustermgr/copyright",
              "/lib/systemd/system/clustermgr.service", "/lib/systemd/system/clustermgr@.service",
              f"{ETC}/clustermgr.conf"):
        assert os.path.exists(f), f
    user = pwd.getpwnam("clustermgr")
    assert user.pw_uid < 1000 and user.pw_dir == DATA
    st = os.stat(DATA)
    assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == (user.pw_uid, user.pw_gid, 0o750)
    st = os.stat(ETC)
    assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == (0, user.pw_gid, 0o750)
    # the sample config is valid, and readable by the service user
    r = run("setpriv", "--reuid=clustermgr", "--regid=clustermgr", "--init-groups",
            "/usr/bin/clustermgr", "-f", f"{ETC}/clustermgr.conf", "--check")
    assert "ok (node 1" in r.stdout
    unit = open("/lib/systemd/system/clustermgr.service").read()
    for line in ("Type=notify", "User=clustermgr", "ExecStart=/usr/bin/clustermgr -f "
                 f"{ETC}/clustermgr.conf", "ProtectSystem=strict", "NoNewPrivileges=yes",
                 "PrivateTmp=yes", "ProtectHome=yes",
                 "ReadWritePaths=/var/lib/clustermgr /var/log/clustermgr"):
        assert line in unit.splitlines(), line
    if shutil.which("systemd-analyze"):  # the unit's syntax, and that its programs exist
        r = run("systemd-analyze", "verify", "/lib/systemd/system/clustermgr.service", check=False)
        assert r.returncode == 0, r.stdout + r.stderr


def check_depends():
    """Depends is ${shlibs:Depends}: every library the binaries load comes from a declared package."""
    depends = run("dpkg-query", "-W", "-f=${Depends}", "clustermgr").stdout
    declared = {d.strip().split()[0] for d in depends.split(",")}
    for binary in ("/usr/bin/clustermgr", "/usr/bin/cmctl"):
        for soname in re.findall(r"NEEDED\s+(\S+)", run("objdump", "-p", binary).stdout):
            path = re.search(rf"{re.escape(soname)} \(.*x86-64.*\) => (\S+)",
                             run("ldconfig", "-p").stdout)
            assert path, soname
            owner = run("dpkg", "-S", os.path.realpath(path.group(1)), check=False).stdout or \
                run("dpkg", "-S", path.group(1)).stdout
            pkg = owner.split(":")[0]
            assert pkg in declared, f"{binary} needs {soname} from {pkg}, Depends: {depends}"


def kv_get(cluster, key):
    r = requests.get(f"http://{cluster.http[1]}/kv/get/{key}", timeout=10)
    assert r.status_code == 200, (key, r.status_code, r.text)
    return base64.b64decode(r.json()["value"]).decode()


def test_package_install_upgrade_remove_purge(tmp_path):
    if pkg_status():
        pytest.skip("package clustermgr is already on this machine: " + pkg_status())
    out1, out2 = str(tmp_path / "v1"), str(tmp_path / "v2")
    deb1 = build(out1)
    version1 = re.search(r"clustermgr_([^_]+)_", os.path.basename(deb1)).group(1)
    version2 = version1 + "+test1"
    deb2 = build(out2, bump=version2)
    assert run("dpkg", "--compare-versions", version2, "gt", version1, check=False).returncode == 0
    for deb, version in ((deb1, version1), (deb2, version2)):
        report, errors = lintian_report(deb, version)
        print(f"lintian {os.path.basename(deb)}:\n{report}")
        assert not errors, report
    size = os.path.getsize(deb1)
    print(f"{os.path.basename(deb1)}: {size} bytes")

    cluster = Cluster(str(tmp_path))
    try:
        # install: pulls its dependencies, creates the user and the directories
        apt("install", "--no-install-recommends", deb1)
        check_installed(version1)
        check_depends()

        cluster.write_configs()
        cluster.start()
        r = cluster.cmctl("stat")
        assert re.search(r"^leader\s+[123]\s", r.stdout, re.M), r.stdout
        for i in NODES:
            st = requests.get(f"http://{cluster.http[i]}/stat", timeout=5).json()
            assert st["raft_status"]["leader"] in NODES
        for k in range(20):
            cluster.cmctl("kv", "set", f"pkgtest/{k}", f"value {k}")
        cluster.cmctl("config", "set", "balance", "Enable")
        balance = cluster.cmctl("config", "get", "balance").stdout
        assert kv_get(cluster, "pkgtest/7") == "value 7"
        cluster.stop()
        assert os.path.isdir(f"{DATA}/node1") and os.listdir(f"{DATA}/node1")
        assert os.stat(f"{DATA}/node1").st_uid == pwd.getpwnam("clustermgr").pw_uid

        # an operator's change to the conffile, kept across the upgrade
        with open(f"{ETC}/clustermgr.conf", "a") as f:
            f.write("# changed by the operator\n")
        sample = open(f"{ETC}/clustermgr.conf").read()
        data_before = sorted(os.listdir(f"{DATA}/node2"))

        # upgrade to the rebuilt package of a later version
        apt("install", "--no-install-recommends", deb2)
        check_installed(version2)
        assert open(f"{ETC}/clustermgr.conf").read() == sample
        assert all(os.path.exists(f"{ETC}/node{i}.conf") for i in NODES)
        assert set(data_before) <= set(os.listdir(f"{DATA}/node2"))

        cluster.start()
        for k in range(20):
            assert kv_get(cluster, f"pkgtest/{k}") == f"value {k}"
        assert cluster.cmctl("config", "get", "balance").stdout == balance
        cluster.cmctl("kv", "set", "pkgtest/after-upgrade", "yes")
        assert "leader" in cluster.cmctl("stat").stdout
        cluster.stop()

        # remove: the programs go, the configuration and the data stay
        apt("remove", "clustermgr")
        assert pkg_status().startswith("deinstall ok config-files")
        assert not os.path.exists("/usr/bin/clustermgr")
        assert os.path.exists(f"{ETC}/clustermgr.conf")
        assert os.listdir(f"{DATA}/node1")
        pwd.getpwnam("clustermgr")

        # purge: the data and the package's configuration go too
        for i in NODES:
            os.unlink(f"{ETC}/node{i}.conf")
        apt("purge", "clustermgr")
        assert pkg_status() == "" or pkg_status().startswith("unknown ok not-installed")
        for path in (DATA, "/var/log/clustermgr", ETC):
            assert not os.path.exists(path), path
    finally:
        cluster.kill()
        if pkg_status():
            apt("purge", "clustermgr")
        for i in NODES:
            if os.path.exists(f"{ETC}/node{i}.conf"):
                os.unlink(f"{ETC}/node{i}.conf")
        if os.path.isdir(ETC) and not os.listdir(ETC):
            os.rmdir(ETC)
