#!/usr/bin/python3
"""Write the config files of a local cluster: one clustermgr.conf per node, in the CubeFS format.

usage: gen-config.py OUTDIR [--nodes 3] [--http-base 9998] [--raft-base 10110] [--data DIR]
                             [--idc z0] [--election-ms N] [--heartbeat-ms N] [--extra JSON]
"""
import argparse
import json
import os
import sys


def node_config(i, n, args):
    http = {k: f"127.0.0.1:{args.http_base + k - 1}" for k in range(1, n + 1)}
    raft = {k: f"127.0.0.1:{args.raft_base + k - 1}" for k in range(1, n + 1)}
    idcs = args.idc.split(",")
    cfg = {
        "bind_addr": http[i],
        "cluster_id": 1,
        "region": "test-region",
        "idc": idcs,
        "chunk_size": 16777216,
        "log": {"level": args.log_level},
        "auth": {"enable_auth": False},
        "code_mode_policies": [
            {"mode_name": "EC3P3" if len(idcs) == 1 else "EC6P6", "min_size": 0,
             "max_size": 1024, "size_ratio": 0.2, "enable": True},
            {"mode_name": "EC6P6" if len(idcs) == 1 else "EC15P12", "min_size": 1025,
             "max_size": 2048, "size_ratio": 0.8, "enable": False},
        ],
        "cluster_config": {
            "disk_repair": "Disable", "balance": "Disable", "disk_drop": "Disable",
            "blob_delete": "Disable", "shard_repair": "Disable", "vol_inspect": "Disable",
            "init_volume_num": 100, "volume_reserve_size": 10485760,
            "data_node_heartbeat_interval_s": 60,
        },
        "volume_mgr_config": {"min_allocable_volume_count": 4, "retain_time_s": 600},
        "disk_mgr_config": {"refresh_interval_s": 300, "rack_aware": False, "host_aware": False},
        "raft_config": {
            "server_config": {
                "nodeId": i,
                "listen_port": args.raft_base + i - 1,
                "raft_wal_dir": os.path.join(args.data, f"node{i}"),
                "peers": {str(k): raft[k] for k in range(1, n + 1) if k <= args.voters},
            },
            "raft_node_config": {
                "node_protocol": "http://",
                "nodes": {str(k): http[k] for k in range(1, n + 1)},
            },
        },
    }
    sc = cfg["raft_config"]["server_config"]
    if args.election_ms:
        sc["election_timeout_ms"] = args.election_ms
    if args.heartbeat_ms:
        sc["heartbeat_timeout_ms"] = args.heartbeat_ms
    if args.snapshot_threshold:
        sc["snapshot_threshold"] = args.snapshot_threshold
        sc["snapshot_trailing"] = max(2, args.snapshot_threshold // 4)
        sc["snapshot_min_interval_ms"] = 100  # tests that ask for snapshots want them soon
    if args.extra:
        merge(cfg, json.loads(args.extra))
    return cfg


def merge(dst, src):
    for k, v in src.items():
        if isinstance(v, dict) and isinstance(dst.get(k), dict):
            merge(dst[k], v)
        else:
            dst[k] = v


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("outdir")
    ap.add_argument("--nodes", type=int, default=3)
    ap.add_argument("--voters", type=int, default=None,
                    help="how many of the nodes are bootstrap peers (the rest join later)")
    ap.add_argument("--http-base", type=int, default=9998)
    ap.add_argument("--raft-base", type=int, default=10110)
    ap.add_argument("--data", default=None)
    ap.add_argument("--idc", default="z0")
    ap.add_argument("--log-level", default="info")
    ap.add_argument("--election-ms", type=int, default=0)
    ap.add_argument("--heartbeat-ms", type=int, default=0)
    ap.add_argument("--snapshot-threshold", type=int, default=0)
    ap.add_argument("--extra", default="", help="JSON object merged into every node's config")
    args = ap.parse_args()
    if args.voters is None:
        args.voters = args.nodes
    if args.data is None:
        args.data = os.path.join(os.path.abspath(args.outdir), "data")
    os.makedirs(args.outdir, exist_ok=True)
    for i in range(1, args.nodes + 1):
        path = os.path.join(args.outdir, f"node{i}.conf")
        with open(path, "w") as f:
            json.dump(node_config(i, args.nodes, args), f, indent=2)
            f.write("\n")
        print(path)


if __name__ == "__main__":
    sys.exit(main())
