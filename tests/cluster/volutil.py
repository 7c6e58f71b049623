"""Helpers of the volume tests: waiting for pools, reading metrics, the binary chunk report,
and a scriptable fake blobnode for answers the simulator does not give."""
import json
import re
import struct
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import requests

from cmcluster import pick_ports
from test_disks import Sim  # noqa: F401  (re-exported)

EC3P3 = 11
CS = 16777216


def vuid(vid, index, epoch):
    return (vid << 32) | (index << 24) | epoch


def wait(cond, timeout=20, what="condition", every=0.1):
    end = time.time() + timeout
    last = None
    while time.time() < end:
        try:
            last = cond()
            if last:
                return last
        except (requests.RequestException, ValueError, KeyError):
            pass
        time.sleep(every)
    raise TimeoutError(f"{what} (last: {last!r})")


def vstat(c, i):
    return c.stat(i)["volume_stat"]


def settled(c, nodes=(1, 2, 3)):
    """Every node applied the leader's commit index."""
    lid = c.wait_leader()
    c.wait_applied(c.stat(lid)["raft_status"]["commit"], nodes=list(nodes))
    return lid


def wait_pool(c, want, nodes=(1, 2, 3), timeout=30):
    """Until every node counts `want` allocatable volumes."""
    return wait(lambda: all(vstat(c, i)["can_alloc_volume"] >= want for i in nodes),
                timeout=timeout, what=f"a pool of {want}")


def volumes(c, node=1, stale=False):
    """Every volume, paging through /volume/list."""
    out, marker = [], 0
    while True:
        r = c.get(node, f"/volume/list?marker={marker}&count=100" + ("&stale=true" if stale else ""))
        assert r.status_code == 200, r.text
        page = r.json()
        if not page["volumes"]:
            return out
        out += page["volumes"]
        marker = page["marker"]


def metrics(c, i):
    """{(name, frozenset(labels)): value} from /metrics."""
    out = {}
    for line in c.get(i, "/metrics").text.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        m = re.match(r'([a-zA-Z_:]+)(\{(.*)\})? (\S+)$', line)
        if not m:
            continue
        labels = frozenset(re.findall(r'(\w+)="([^"]*)"', m.group(3) or ""))
        out[(m.group(1), labels)] = float(m.group(4))
    return out


def metric(c, i, name, **labels):
    want = set(labels.items())
    for (n, ls), v in metrics(c, i).items():
        if n == name and want <= set(ls):
            return v
    raise KeyError(name)


def records(c, i):
    """created / pending / aborted records and the vid scope, from /metrics."""
    m = {s: metric(c, i, "clustermgr_volume_records", state=s)
         for s in ("created", "pending", "aborted")}
    m["scope"] = metric(c, i, "clustermgr_volume_vid_scope")
    return m


def chunk_report(recs):
    """The binary body of POST /chunk/report: u32 count, then 79-byte records."""
    body = struct.pack(">I", len(recs))
    for r in recs:
        v, disk, total, used, free = r["vuid"], r["disk_id"], r["total"], r["used"], r["free"]
        cid = f"{v:016x}-{0x16dfa0e05a1b2c3d:016x}".encode()
        body += cid + struct.pack(">QIQQQQBB", v, disk, total, used, free, total,
                                  r.get("status", 1), r.get("compacting", 0))
    return body


class FakeBlobnode:
    """A blobnode whose chunk API answers are scripted per operation:
    answers["stat"] = (status, json body or None). Records every request."""

    def __init__(self):
        self.port = pick_ports(1)
        self.answers = {}
        self.calls = []
        fake = self

        class H(BaseHTTPRequestHandler):
            def _answer(self):
                op = self.path.split("/")[2] if self.path.startswith("/chunk/") else ""
                fake.calls.append((self.command, self.path))
                status, body = fake.answers.get(op, (200, None))
                data = b"" if body is None else json.dumps(body).encode()
                self.send_response(status)
                if data:
                    self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = _answer

            def log_message(self, *a):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), H)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def close(self):
        self.server.shutdown()
        self.server.server_close()
