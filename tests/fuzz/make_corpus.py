#!/usr/bin/python3
"""Write the seed corpus of the fuzz targets (tests/fuzz/corpus/<target>/), encoded from the
formats of docs/formats.md: requests for every route, commands for every module and operation,
and snapshot streams. Run it again after adding a route, a command or a snapshot section; the
files are checked in, and so are the inputs of past crashes (named crash-*), which it keeps.

    tests/fuzz/make_corpus.py [corpus dir]
"""
import base64
import hashlib
import json
import os
import struct
import sys
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))


def u8(v):
    return struct.pack(">B", v)


def u16(v):
    return struct.pack(">H", v)


def u32(v):
    return struct.pack(">I", v)


def u64(v):
    return struct.pack(">Q", v & (2 ** 64 - 1))


def i64(v):
    return struct.pack(">q", v)


def uvar(v):
    out = b""
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])


def s(v):
    if isinstance(v, str):
        v = v.encode()
    return uvar(len(v)) + v


T0 = 1704067200 * 10 ** 9


# ---- requests -------------------------------------------------------------------------------

def disk(did, host="http://127.0.0.1:8000", path="/d1", **kw):
    d = {"disk_id": did, "cluster_id": 1, "idc": "z0", "rack": "r0", "host": host, "path": path,
         "status": 1, "readonly": False, "create_time": "2024-01-01T00:00:00Z",
         "last_update_time": "2024-01-01T00:00:00.123456789+08:00", "used": 0,
         "free": 1 << 40, "size": 1 << 40, "max_chunk_cnt": 0, "free_chunk_cnt": 0,
         "used_chunk_cnt": 0}
    d.update(kw)
    return json.dumps(d)


def b64(v):
    return base64.b64encode(v.encode()).decode()


REQUESTS = [
    "POST /config/set\n" + json.dumps({"key": "balance", "value": "Enable"}),
    "POST /config/set\n" + json.dumps({"key": "code_mode", "value": "x"}),
    "POST /config/set\n{\"key\":\"\",\"value\":1}",
    "GET /config/get?key=balance\n",
    "GET /config/get?key=%62alance&key=x\n",
    "POST /config/delete?key=balance\n",
    "GET /config/list\n",
    "POST /member/add\n" + json.dumps({"peer_id": 4, "host": "127.0.0.1:10113",
                                       "member_type": 1, "node_host": "127.0.0.1:10001"}),
    "POST /member/add\n" + json.dumps({"peer_id": 0, "host": "x", "member_type": 7}),
    "POST /member/remove\n{\"peer_id\":3}",
    "POST /member/promote\n{\"peer_id\":18446744073709551615}",
    "POST /leadership/transfer\n{\"peer_id\":-1}",
    "POST /bid/alloc\n{\"count\":100}",
    "POST /bid/alloc\n{\"count\":0}",
    "POST /bid/alloc\n{\"count\":1e3}",
    "POST /diskid/alloc\nnull",
    "POST /disk/add\n" + disk(7),
    "POST /disk/add\n" + disk(20, node_id=1, disk_set_id=0, idc="", host=""),
    "POST /disk/add\n" + disk(20, node_id=99, disk_set_id=2),
    "POST /node/add\n" + json.dumps({"node_id": 0, "node_set_id": 0, "cluster_id": 1,
                                     "disk_type": 1, "idc": "z0", "rack": "r", "role": 1,
                                     "host": "http://127.0.0.1:8899", "status": 0}),
    "POST /node/add\n" + json.dumps({"cluster_id": 1, "disk_type": "NVMeSSD", "idc": "z1",
                                     "role": "blobnode", "host": "h", "node_set_id": 2}),
    "POST /node/add\n" + json.dumps({"cluster_id": 1, "disk_type": 0, "role": "x"}),
    "POST /node/drop\n{\"node_id\":1}",
    "GET /node/info?node_id=1\n",
    "GET /topo/info\n",
    "POST /disk/add\n" + disk(7, status=9, path="p" * 40),
    "POST /disk/add\n" + disk(4294967295, create_time="2024-02-30T25:61:61Z"),
    "GET /disk/info?disk_id=7\n",
    "GET /disk/list?idc=z0&rack=r0&host=http://127.0.0.1:8000&status=1&marker=3&count=200\n",
    "GET /disk/list?rack=r0\n",
    "POST /disk/set\n{\"disk_id\":7,\"status\":2}",
    "POST /disk/heartbeat\n" + json.dumps({"disks": [
        {"disk_id": 7, "used": 1, "free": 2, "size": 3, "used_chunk_cnt": 4},
        {"disk_id": 8, "used": 0, "free": 0, "size": 0, "used_chunk_cnt": 0}]}),
    "POST /disk/heartbeat\n{\"disks\":[]}",
    "POST /disk/heartbeat\n{\"disks\":[{\"disk_id\":1,\"used\":-1}]}",
    "POST /disk/drop\n{\"disk_id\":7}",
    "POST /disk/dropped\n{\"disk_id\":7}",
    "GET /disk/droppinglist\n",
    "POST /disk/access\n{\"disk_id\":7,\"readonly\":true}",
    "POST /admin/disk/update\n" + disk(7, max_chunk_cnt=10, free_chunk_cnt=5),
    "POST /service/register\n" + json.dumps({"cluster_id": 1, "name": "proxy",
                                             "host": "http://127.0.0.1:9600", "idc": "z0",
                                             "timeout": 30}),
    "POST /service/register\n" + json.dumps({"cluster_id": 1, "name": "proxy",
                                             "host": "http://[::1]:9600", "idc": "z9"}),
    "POST /service/unregister\n{\"name\":\"proxy\",\"host\":\"http://127.0.0.1:9600\"}",
    "POST /service/heartbeat\n{\"name\":\"proxy\",\"host\":\"http://127.0.0.1:9600\"}",
    "GET /service/get?name=proxy\n",
    "GET /service/list\n",
    "GET /kv/get/some%2Fkey\n",
    "GET /kv/get/a%00b\n",
    "POST /kv/set\n" + json.dumps({"key": "k1", "value": b64("v1")}),
    "POST /kv/set\n{\"key\":\"k1\",\"value\":\"!!not base64\"}",
    "POST /kv/set/path%20key\n" + json.dumps({"value": b64("hello")}),
    "POST /kv/delete/k1\n",
    "GET /kv/list?prefix=k&marker=k0&count=1000\n",
    "GET /kv/list?prefix=%00\n",
    "GET /snapshot/dump\n",
    "GET /stat\n",
    "GET /livez\n",
    "GET /readyz\n",
    "GET /metrics\n",
    "GET /log/level\n",
    "POST /log/level?level=warn\n",
    "POST /log/level\n{\"level\":2}",
    "POST /log/level\n{\"level\":[1]}",
    "GET /\n",
    "GET /web/app.js\n",
    "GET /web/../etc/passwd\n",
    "GET /dashboard/data\n",
    "GET /internal/member?id=3\n",
    "GET /internal/readindex\n",
    "GET /volume/get?vid=1\n",
    "GET /volume/list?marker=0&count=500\n",
    "GET /v2/volume/list?status=2\n",
    "POST /volume/alloc\n" + json.dumps({"code_mode": 11, "count": 2, "is_init": False,
                                         "excludes": [1, 2]}),
    "POST /volume/alloc\n{\"code_mode\":300,\"count\":1}",
    "POST /volume/retain\n" + json.dumps({"tokens": ["10.0.0.1;1", "x;y", "10.0.0.1;99999"]}),
    "POST /volume/lock\n{\"vid\":1}",
    "POST /volume/unlock\n{\"vid\":4294967296}",
    "POST /volume/update\n" + json.dumps({"old_vuid": (1 << 32) | 1, "new_vuid": (1 << 32) | 2,
                                          "new_disk_id": 5}),
    "GET /volume/allocated/list?host=10.0.0.1&code_mode=11\n",
    "POST /admin/update/volume\n" + json.dumps({"vid": 1, "status": 2, "total": 1, "free": 1,
                                                "used": 0}),
    "POST /admin/update/volume/unit\n" + json.dumps({"vuid": (1 << 32) | 1, "epoch": 2,
                                                     "next_epoch": 3, "disk_id": 4,
                                                     "compact": True}),
    "POST /volume/unit/alloc\n" + json.dumps({"vuid": (1 << 32) | 1}),
    "POST /volume/unit/release\n" + json.dumps({"vuid": (1 << 32) | 1, "disk_id": 3}),
    "GET /volume/unit/list?disk_id=3\n",
    "POST /chunk/set/compact\n" + json.dumps({"vuid": (1 << 32) | 1, "compact": True}),
]


# ---- commands -------------------------------------------------------------------------------

def record(module, op, payload, dt=0):
    return bytes([module, op, dt]) + u16(len(payload)) + payload


def raw_entry(module, op, payload, node=1, req=7, ts=T0):
    e = bytes([0xC7, 1, module, op]) + u32(len(payload)) + u64(node) + u64(req) + i64(ts)
    e += payload
    e += b"\0" * (-len(e) % 8)
    return bytes([0x80, 0, 0]) + u16(len(e)) + e


def disk_add(did, host="http://127.0.0.1:8000", path="/x", status=1, idc="z0", rack="r0",
             size=1 << 40, used_chunks=0):
    return (u32(did) + u32(1) + s(idc) + s(rack) + s(host) + s(path) + u8(status) + u8(0) +
            s("2024-01-01T00:00:00Z") + s("2024-01-01T00:00:00Z") + i64(0) + i64(size) +
            i64(size) + i64(used_chunks) + u32(60) + u64(16777216))


def caps(ns=3, rack_cap=1, idc_cap=1, ds=4, per_node=2, rack=0):
    return u32(ns) + u32(rack_cap) + u32(idc_cap) + u32(ds) + u32(per_node) + u8(rack)


def hb(lease=60, chunk=16777216, disks=((1, 0, 1 << 39, 1 << 40, 3),)):
    out = u32(lease) + u64(chunk) + uvar(len(disks))
    for d, used, free, size, uc in disks:
        out += u32(d) + i64(used) + i64(free) + i64(size) + i64(uc)
    return out


COMMANDS = {
    "members": [record(1, 1, u64(4) + s("127.0.0.1:10001")), record(1, 2, u64(2))],
    "config": [record(2, 1, s("balance") + s("Disable")), record(2, 2, s("k")),
               record(2, 1, s("") + s(""))],
    "scope": [record(3, 1, s("bid") + u64(5000)), record(3, 1, s("diskid") + u64(40)),
              record(3, 1, s("x" * 40) + u64(1))],
    "service": [record(4, 1, s("proxy") + s("http://127.0.0.9:1") + s("z1") + u64(1) + i64(60)),
                record(4, 1, s("a") + s("b") + s("c") + u64(2) + i64(-(2 ** 63))),
                record(4, 2, s("proxy") + s("http://127.0.0.2:9100")),
                record(4, 3, s("scheduler") + s("http://127.0.0.1:9100"), dt=200)],
    "disk": [record(3, 1, s("diskid") + u64(30)) + record(5, 1, disk_add(25)),
             record(5, 1, disk_add(26, path="/data/1", host="http://127.0.0.2:8000")),
             record(5, 1, disk_add(19, size=0, used_chunks=5)),
             record(5, 2, u32(5) + u8(2)), record(5, 2, u32(2) + u8(3)),
             record(5, 2, u32(1) + u8(5)), record(5, 3, u32(6)),
             record(5, 3, u32(3)) + record(5, 4, u32(3)),
             record(5, 5, hb(disks=((1, 0, 1 << 39, 1 << 40, 3), (9, 1, 1, 1, 1))), dt=10),
             record(5, 5, hb(lease=0, chunk=0)), record(5, 5, hb(disks=())),
             record(5, 6, u32(8) + u8(1)), record(5, 7, u32(10) + u8(4) + i64(7) + i64(3)),
             record(5, 7, u32(11) + u8(0) + i64(-1) + i64(2 ** 40))],
    # nodes (module 8): add (cluster, disk type, role, idc, rack, host, wanted set, caps),
    # drop, attach a node-less disk; disks under nodes are disk adds with a node suffix
    "node": [record(8, 1, u32(1) + u8(1) + u8(1) + s("z0") + s("r0") + s("http://n9:1") +
                    u32(0) + caps()),
             record(8, 1, u32(1) + u8(2) + u8(1) + s("z1") + s("r1") + s("http://n9:1") +
                    u32(2) + caps(rack=1)),
             record(8, 1, u32(1) + u8(1) + u8(1) + s("z0") + s("r0") + s("h") + u32(99) + caps()),
             record(8, 2, u32(1)), record(8, 2, u32(3)),
             record(8, 3, u32(5) + u32(2) + caps()),
             record(3, 1, s("diskid") + u64(30)) +
             record(5, 1, disk_add(27, host="http://n1:1") + u32(1) + u32(2) + u32(1))],
    "kv": [record(7, 1, s("key/9") + b"value"), record(7, 1, s("k") + b""),
           record(7, 2, s("key/0")), record(7, 1, s("a\0b") + b"x")],
    # volumes of the fuzz state (fuzz.h): EC6P6 (mode 2, 12 units), vid 1 leased to 10.0.0.1,
    # vid 2 idle, vid 3 pending; vuid = vid << 32 | index << 24 | epoch
    "volume": [record(6, 1, u32(4) + u8(2) + u64(16777216) + u8(12) +
                      b"".join(u32(d) + u32(1) for d in range(5, 17))),
               record(6, 2, u32(3) + u8(1) + u8(0) + u32(1) + u32(2) + u32(18)),
               record(6, 3, u32(3) + u8(12) + u32(1) * 12),
               record(6, 4, u32(3) + u8(12) + u32(1) * 12),
               record(6, 5, u8(2) + s("10.0.0.2") + i64(T0 + 600 * 10 ** 9) + u64(10485760) +
                      uvar(1) + u32(2)),
               record(6, 6, i64(T0 + 900 * 10 ** 9) + u64(10485760) + i64(-3) + uvar(2) +
                      u32(1) + s("10.0.0.1") + u32(2) + s("10.0.0.9")),
               record(6, 7, uvar(2) + u32(1) + u32(77), dt=250),
               record(6, 8, u32(2)) + record(6, 10, u32(2) + u8(1) + u32(1)) +
               record(6, 9, u32(2)),
               record(6, 11, u64((1 << 32) | (3 << 24) | 1) + u64((1 << 32) | (3 << 24) | 2) +
                      u32(17)),
               record(6, 12, uvar(2) + u64((2 << 32) | 1) + u64(16777216) + u64(1) +
                      u64(16777215) + u64((9 << 32) | 1) + u64(1) + u64(2) + u64(3)),
               record(6, 13, u64((1 << 32) | (5 << 24) | 1) + u8(1)),
               record(6, 14, u64((2 << 32) | (7 << 24) | 1) + u32(2)),
               record(6, 15, uvar(2) + u32(3) + u8(1) + u32(4) + u8(0)),
               record(6, 16, u32(2) + u8(3) + u64(1) + u64(2) + u64(3)),
               record(6, 17, u64((2 << 32) | (1 << 24) | 1) + u32(5) + u32(6) + u32(18) + u8(1))],
    "raw": [raw_entry(2, 1, s("balance") + s("Enable")), raw_entry(9, 1, b""),
            raw_entry(7, 9, b"\xff\xff"), bytes([0x80, 0, 0, 0, 40]) + b"\xc7\x02" + b"\0" * 38],
}


# ---- snapshots ------------------------------------------------------------------------------

def snapshot(sections):
    body = b"CMSNAP01" + u32(len(sections))
    for mod, data in sections:
        body += u8(mod) + u64(len(data)) + data
    return body + u32(zlib.crc32(body))


def disk_rec(did, host, path, status=1, idc="z0", rack="r0", dropping=0, expire=0):
    return (u32(did) + u32(1) + s(idc) + s(rack) + s(host) + s(path) + u8(status) + u8(0) +
            u8(dropping) + s("2024-01-01T00:00:00Z") + s("2024-01-01T00:00:00Z") + i64(0) +
            i64(1 << 40) + i64(1 << 40) + i64(65536) + i64(65536) + i64(0) + i64(expire) +
            i64(0))


def full_snapshot(disks, kvs=(("a", b"1"), ("b", b"2")), scope=(("bid", 99), ("diskid", 9)),
                  extra=()):
    return snapshot([
        (1, uvar(2) + u64(1) + s("127.0.0.1:9998") + u64(2) + s("127.0.0.1:9999")),
        (2, uvar(1) + s("balance") + s("Enable")),
        (3, uvar(len(scope)) + b"".join(s(n) + u64(v) for n, v in scope)),
        (4, uvar(1) + s("proxy") + s("http://127.0.0.1:9600") + s("z0") + u64(1) + i64(30) +
         i64(T0 + 30 * 10 ** 9)),
        (5, uvar(len(disks)) + b"".join(disks)),
        (7, uvar(len(kvs)) + b"".join(s(k) + s(v) for k, v in kvs)),
    ] + list(extra))


SNAPSHOTS = {
    "empty": snapshot([]),
    "state": full_snapshot([disk_rec(i, f"http://127.0.0.{i % 3}:8000", f"/d{i}",
                                     status=1 + i % 5, idc=f"z{i % 3}", rack=f"r{i % 2}",
                                     dropping=int(i == 4), expire=T0 * (i % 2))
                            for i in range(1, 9)]),
    "same-hostpath": full_snapshot([disk_rec(1, "h", "/p"), disk_rec(2, "h", "/p")]),
    "disk-order": full_snapshot([disk_rec(5, "h", "/a"), disk_rec(2, "h", "/b")]),
    "disk-above-scope": full_snapshot([disk_rec(50, "h", "/a")]),
    "kv-order": full_snapshot([], kvs=(("b", b"1"), ("a", b"2"))),
    "two-sections": snapshot([(2, uvar(0)), (2, uvar(0))]),
    "unknown-module": snapshot([(6, b""), (9, b"")]),
    "truncated": full_snapshot([disk_rec(1, "h", "/p")])[:-40],
    "nodes": full_snapshot([disk_rec(1, "http://n1:1", "/a"), disk_rec(2, "http://n1:1", "/b")],
                           extra=[(8, u32(2) + u32(3) + uvar(2) +
                                   u32(1) + u32(2) + u32(1) + u8(1) + u8(1) + u8(1) + s("z0") +
                                   s("r0") + s("http://n1:1") +
                                   u32(2) + u32(2) + u32(1) + u8(1) + u8(1) + u8(2) + s("z1") +
                                   s("r1") + s("http://n2:1") +
                                   uvar(2) + u32(1) + u32(1) + u32(2) + u8(1) +
                                   u32(2) + u32(1) + u32(3) + u8(0))]),
    # past findings, kept as seeds: an id that sized the disk table to 2^32 entries, numbers
    # whose sums overflowed
    "disk-id-huge": full_snapshot([disk_rec(2 ** 32 - 2, "h", "/a")], scope=(("diskid", 2 ** 32),)),
}


def chunk_report(recs, count=None):
    """The binary body of POST /chunk/report: u32 count, then 79-byte records (a 33-byte chunk
    id, u64 vuid, u32 disk id, u64 total, used, free, size, u8 status, u8 compacting)."""
    body = u32(len(recs) if count is None else count)
    for vuid, disk, total, used, free in recs:
        body += f"{vuid:016x}-{0x16dfa0e05a1b2c3d:016x}".encode()
        body += struct.pack(">QIQQQQBB", vuid, disk, total, used, free, total, 1, 0)
    return body


CHUNK_REPORTS = {
    "two": chunk_report([((2 << 32) | 1, 3, 16777216, 4096, 16777216 - 4096),
                         ((1 << 32) | (1 << 24) | 1, 2, 16777216, 0, 16777216)]),
    "none": chunk_report([]),
    "count-too-high": chunk_report([((2 << 32) | 1, 3, 1, 2, 3)], count=5),
    "huge-count": u32(2 ** 32 - 1),
    "truncated": chunk_report([((2 << 32) | 1, 3, 1, 2, 3)])[:50],
    "sizes-inconsistent": chunk_report([((2 << 32) | 1, 3, 10, 20, 2 ** 64 - 1)]),
}


def write(d, name, data):
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "corpus")
    for t in ("routes", "cmd", "snapshot", "chunk_report"):
        d = os.path.join(root, t)
        if os.path.isdir(d):
            for name in os.listdir(d):
                if name.startswith("seed-"):
                    os.unlink(os.path.join(d, name))
    for req in REQUESTS:
        h = hashlib.sha1(req.encode()).hexdigest()[:10]
        write(os.path.join(root, "routes"), f"seed-{h}", req.encode())
    for name, recs in COMMANDS.items():
        for i, r in enumerate(recs):
            write(os.path.join(root, "cmd"), f"seed-{name}-{i}", r)
        write(os.path.join(root, "cmd"), f"seed-{name}-all", b"".join(recs))
    for name, data in SNAPSHOTS.items():
        write(os.path.join(root, "snapshot"), f"seed-{name}", data)
    for name, data in CHUNK_REPORTS.items():
        write(os.path.join(root, "chunk_report"), f"seed-{name}", data)
    write(os.path.join(root, "routes"), "seed-chunk-report",
          b"POST /chunk/report\n" + CHUNK_REPORTS["two"])


if __name__ == "__main__":
    main()
