"""Run real clustermgr processes on loopback for tests, benchmarks and chaos runs.

A Cluster owns a temporary directory with one config file and one data directory per node, picks
free ports, starts and kills processes, and offers small HTTP helpers. Nothing here mocks raft or
HTTP: every request goes over TCP to a real node.
"""
import base64
import hashlib
import http.client
import importlib.util
import json
import struct
import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import requests

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.environ.get("CM_BUILD", "build")
BINARY = os.path.join(ROOT, BUILD, "clustermgr")

_spec = importlib.util.spec_from_file_location("gen_config", os.path.join(ROOT, "scripts", "gen-config.py"))
gen_config = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(gen_config)


def port_free(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def ephemeral_low():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError):
        return 32768


def pick_ports(count):
    """A base port such that base..base+count-1 and base+1000.. are free. Every port stays below
    the kernel's ephemeral range: a node restarted after kill -9 must find its port again, and an
    unrelated outgoing connection may take any ephemeral port while the node is down."""
    top = min(ephemeral_low(), 65536) - 1000 - count - 1
    for _ in range(200):
        base = random.randrange(11000, max(11010, top), 10)
        if all(port_free(base + i) and port_free(base + 1000 + i) for i in range(count)):
            return base
    raise RuntimeError("no free port range found")


class Args:
    """Stands in for gen-config's argparse namespace."""

    def __init__(self, **kw):
        self.nodes = 3
        self.voters = None
        self.http_base = 9998
        self.raft_base = 10110
        self.data = None
        self.idc = "z0"
        self.log_level = "info"
        self.election_ms = 0
        self.heartbeat_ms = 0
        self.snapshot_threshold = 0
        self.extra = ""
        self.__dict__.update(kw)
        if self.voters is None:
            self.voters = self.nodes


class Cluster:
    def __init__(self, nodes=3, voters=None, max_nodes=None, binary=None, extra=None,
                 snapshot_threshold=0, election_ms=0, heartbeat_ms=0, idc="z0", log_level="info",
                 workdir=None):
        self.n = nodes
        # Tests see every disk heartbeat applied unless they ask for the reference's filter of
        # heartbeats more frequent than heartbeat_notify_interval_s (test_nodes.py does).
        extra = {"heartbeat_notify_interval_s": -1, **(extra or {})}
        self.max_nodes = max_nodes or max(nodes, 5)
        self.base = pick_ports(self.max_nodes)
        self.dir = workdir or tempfile.mkdtemp(prefix="cmtest-")
        self.binary = binary or BINARY
        self.binaries = {}  # node -> the binary it starts with, when not self.binary
        self.procs = {}
        self.logs = {}
        self.args = Args(nodes=self.max_nodes, voters=voters or nodes, http_base=self.base,
                         raft_base=self.base + 1000, data=os.path.join(self.dir, "data"),
                         idc=idc, log_level=log_level, election_ms=election_ms,
                         heartbeat_ms=heartbeat_ms, snapshot_threshold=snapshot_threshold,
                         extra=json.dumps(extra) if extra else "")
        self.configs = {}
        for i in range(1, self.max_nodes + 1):
            self.configs[i] = gen_config.node_config(i, self.max_nodes, self.args)
            self.write_config(i)

    # ---- configs and processes ----------------------------------------------------------
    def config_path(self, i):
        return os.path.join(self.dir, f"node{i}.conf")

    def write_config(self, i):
        with open(self.config_path(i), "w") as f:
            json.dump(self.configs[i], f, indent=2)

    def data_dir(self, i):
        return self.configs[i]["raft_config"]["server_config"]["raft_wal_dir"]

    def http(self, i):
        return f"127.0.0.1:{self.base + i - 1}"

    def raft_addr(self, i):
        return f"127.0.0.1:{self.base + 1000 + i - 1}"

    def url(self, i, path):
        return f"http://{self.http(i)}{path}"

    def start(self, i, wait=True):
        assert i not in self.procs or self.procs[i].poll() is not None, f"node {i} already runs"
        log = open(os.path.join(self.dir, f"node{i}.log"), "ab")
        self.logs[i] = log
        binary = self.binaries.get(i, self.binary)
        self.procs[i] = subprocess.Popen([binary, "-f", self.config_path(i)], stdout=log,
                                         stderr=subprocess.STDOUT)
        if wait:
            self.wait_http(i)
        return self.procs[i]

    def start_all(self, wait_leader=True):
        for i in range(1, self.n + 1):
            self.start(i, wait=False)
        for i in range(1, self.n + 1):
            self.wait_http(i)
        if wait_leader:
            self.wait_version(self.wait_leader())
        return self

    def raw_post(self, i, path, headers):
        """A POST to node i with exactly these headers and no body bytes (what a client that
        sends Content-Length: 0 sends); returns (status, body)."""
        host, port = self.http(i).split(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=15)
        try:
            conn.putrequest("POST", path, skip_accept_encoding=True)
            for k, v in headers.items():
                conn.putheader(k, v)
            conn.endheaders()
            r = conn.getresponse()
            return r.status, r.read()
        finally:
            conn.close()

    def wipe_and_readd(self, victim, lid):
        """Kill `victim`, wipe its data directory, and add it back empty under the same id
        through leader `lid` (remove, start without peers, add as a voter): it catches up from
        a snapshot."""
        self.kill(victim)
        shutil.rmtree(self.data_dir(victim))
        assert self.post(lid, "/member/remove", {"peer_id": victim}).status_code == 200
        self.configs[victim]["raft_config"]["server_config"].pop("peers")
        self.write_config(victim)
        self.start(victim)
        r = self.post(lid, "/member/add", {"peer_id": victim, "host": self.raft_addr(victim),
                                           "member_type": 2, "node_host": self.http(victim)})
        assert r.status_code == 200, r.text

    def wait_version(self, i, timeout=20):
        """A new cluster starts at cluster version 1 and its leader raises it within a second or
        two, once it heard from every member; tests start from the raised version. (A binary
        without cluster versions has no cluster_version in /stat.)"""
        end = time.time() + timeout
        while time.time() < end:
            st = self.stat(i)
            if st.get("cluster_version", 0) == 0 or st["cluster_version"] >= 2:
                return st.get("cluster_version")
            time.sleep(0.05)
        raise TimeoutError(f"cluster version not raised: {self.log_tail(i)}")

    def wait_http(self, i, timeout=None):
        # A sanitizer build loads a long raft log slowly (canonical raft grows its entry array
        # one realloc at a time, which ASan turns into fresh mappings): about 10 s for 4,500
        # entries on an idle core, more with three nodes starting at once on two cores.
        if timeout is None:
            timeout = 60 if "san" in os.path.basename(BUILD) else 20
        end = time.time() + timeout
        while time.time() < end:
            p = self.procs.get(i)
            if p is not None and p.poll() is not None:
                raise RuntimeError(f"node {i} exited with {p.returncode}: {self.log_tail(i)}")
            try:
                requests.get(self.url(i, "/livez"), timeout=1)
                return
            except requests.RequestException:
                time.sleep(0.05)
        raise TimeoutError(f"node {i} does not serve HTTP: {self.log_tail(i)}")

    def alive(self):
        return [i for i, p in self.procs.items() if p.poll() is None]

    def kill(self, i, sig=signal.SIGKILL):
        p = self.procs[i]
        if p.poll() is None:
            p.send_signal(sig)
            if sig in (signal.SIGKILL, signal.SIGTERM, signal.SIGINT):
                p.wait(timeout=30)
        return p.returncode

    def stop(self, i):
        return self.kill(i, signal.SIGTERM)

    def pause(self, i):
        self.procs[i].send_signal(signal.SIGSTOP)

    def resume(self, i):
        self.procs[i].send_signal(signal.SIGCONT)

    def shutdown(self):
        for i, p in list(self.procs.items()):
            if p.poll() is None:
                try:
                    p.send_signal(signal.SIGCONT)
                    p.terminate()
                    p.wait(timeout=15)
                except Exception:
                    p.kill()
                    p.wait()
        for log in self.logs.values():
            log.close()

    SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                       "ERROR: ThreadSanitizer")

    def sanitizer_reports(self):
        """Lines of sanitizer reports found in the node logs (empty when clean)."""
        found = []
        for i in self.logs:
            try:
                text = self.log_text(i)
            except OSError:
                continue
            for line in text.splitlines():
                if any(m in line for m in self.SANITIZER_MARKS):
                    found.append(f"node {i}: {line}")
        return found

    def log_tail(self, i, lines=30):
        try:
            with open(os.path.join(self.dir, f"node{i}.log"), "rb") as f:
                return b"\n".join(f.read().splitlines()[-lines:]).decode(errors="replace")
        except OSError:
            return ""

    def log_text(self, i):
        with open(os.path.join(self.dir, f"node{i}.log"), "rb") as f:
            return f.read().decode(errors="replace")

    # ---- HTTP helpers -----------------------------------------------------------------
    def secret(self, i=1):
        auth = self.configs[i].get("auth", {})
        return auth.get("secret") if auth.get("enable_auth") else None

    def token(self, path, secret, ts=None):
        """The request token CubeFS clients compute (md5 of path, raw query, time, secret)."""
        p, _, q = path.partition("?")
        t = struct.pack("<q", int(time.time()) if ts is None else ts)
        digest = hashlib.md5(p.encode() + q.encode() + t + secret.encode()).digest()
        return base64.urlsafe_b64encode(t + digest).decode()

    def _kw(self, i, path, kw):
        kw.setdefault("timeout", 15)
        sec = self.secret(i)
        if sec and kw.pop("auth", True):
            kw.setdefault("headers", {})
            kw["headers"].setdefault("BLOB-STORE-AUTH-TOKEN", self.token(path, sec))
        kw.pop("auth", None)
        return kw

    def get(self, i, path, **kw):
        return requests.get(self.url(i, path), **self._kw(i, path, kw))

    def post(self, i, path, body=None, **kw):
        if body is not None and not isinstance(body, (bytes, str)):
            body = json.dumps(body)
        return requests.post(self.url(i, path), data=body, **self._kw(i, path, kw))

    def stat(self, i):
        return self.get(i, "/stat", timeout=3).json()

    def leader(self, among=None):
        """The leader id that every reachable node agrees on, or 0."""
        seen = set()
        for i in among or self.alive():
            try:
                st = self.stat(i)["raft_status"]
            except (requests.RequestException, ValueError):
                continue
            seen.add(st["leader"])
        if len(seen) == 1:
            return seen.pop()
        return 0

    def wait_leader(self, timeout=20, among=None, exclude=()):
        end = time.time() + timeout
        while time.time() < end:
            lid = self.leader(among)
            if lid and lid not in exclude:
                st = self.stat(lid) if lid in self.alive() else None
                if st and st["raft_status"]["raftState"] == "StateLeader":
                    # the leader serves writes once it applied earlier terms
                    r = self.get(lid, "/readyz", timeout=3)
                    if r.status_code == 200:
                        return lid
            time.sleep(0.05)
        raise TimeoutError("no leader: " + "; ".join(f"{i}: {self.log_tail(i, 5)}" for i in self.alive()))

    def transfer(self, to, via=None, timeout=20, among=None):
        """Move leadership to `to` through node `via` (default: the leader) and wait until it
        leads. The route answers before the transfer happens and raft may give one up (e.g. when
        the target was still catching up), so ask again until it took effect, as an operator
        would."""
        end = time.time() + timeout
        while time.time() < end:
            r = self.post(via or self.wait_leader(among=among), "/leadership/transfer",
                          {"peer_id": to}, timeout=5)
            assert r.status_code == 200, r.text
            step = time.time() + 3
            while time.time() < min(step, end):
                if self.leader(among) == to:
                    return self.wait_leader(among=among)
                time.sleep(0.05)
        raise TimeoutError(f"leadership did not move to {to}")

    def wait_applied(self, index, nodes=None, timeout=20):
        end = time.time() + timeout
        for i in nodes or self.alive():
            while True:
                if self.stat(i)["raft_status"]["applied"] >= index:
                    break
                if time.time() > end:
                    raise TimeoutError(f"node {i} did not apply {index}")
                time.sleep(0.05)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.shutdown()
