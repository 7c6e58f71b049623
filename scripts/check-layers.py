#!/usr/bin/python3
"""Fail when a file under src/ includes a header across a forbidden edge between layers.

The layers, bottom to top (docs/developing.md, "Layers"):

  util       src/util/, src/security/   no project code below them
  httpc      src/client/httpc.*       the outgoing HTTP clients (libcurl on a thread; plink,
             src/client/plink.*       pipelined connections on the caller's loop)
  fsm        src/fsm/                 the replicated state machine and its settings
  settings   src/raft/settings.h      what consensus needs of the configuration
  config     src/server/config.*      the node's configuration file (embeds both settings)
  request    src/http/{job,router,args,errors}.*  what a parsed request is (no server)
  consensus  src/raft/                raft wiring, proposals, barriers, membership, snapshots
  dispatch   src/dispatch/            a request's way through the node: queue, handler,
                                      forwarding, read index, replies
  app        src/api/, src/jobs/, src/ops/, src/client/blobnode.*  route handlers, leader jobs,
                                      operations
  front      src/http/server.*        the HTTP front end
  main       src/server/main.c        wiring

A file may include its own layer and the layers listed for it in ALLOWED. Two edges are kept
strict on purpose: consensus includes nothing of the server's config, requests, dispatch,
handlers or HTTP (neither the server nor the client), only its own settings, and the state
machine includes nothing but util. Every file under src/ must belong to a layer, so a new
directory has to be placed here first.

Usage: check-layers.py [ROOT]   (ROOT defaults to the repository holding this script)
"""
import os
import re
import sys

# (layer, pattern on the path relative to ROOT), first match wins
LAYERS = [
    ("util", r"src/util/[^/]+"),
    ("util", r"src/security/[^/]+"),
    ("httpc", r"src/client/(httpc|plink)\.[ch]"),
    ("fsm", r"src/fsm/[^/]+"),
    ("settings", r"src/raft/settings\.h"),
    ("config", r"src/server/config\.[ch]"),
    ("request", r"src/http/(job|router|args|errors|stats)\.[ch]"),
    ("consensus", r"src/raft/[^/]+"),
    ("dispatch", r"src/dispatch/[^/]+"),
    ("app", r"src/(api|jobs|ops)/[^/]+"),
    ("app", r"src/client/blobnode\.[ch]"),
    ("front", r"src/http/server\.[ch]"),
    ("main", r"src/server/main\.c"),
]

ALLOWED = {
    "util": {"util"},
    "fsm": {"util"},
    "httpc": {"util"},
    "settings": {"util", "fsm"},
    "config": {"util", "fsm", "settings"},
    "request": {"util", "fsm", "settings", "config"},
    "consensus": {"util", "fsm", "settings"},
    "dispatch": {"util", "httpc", "fsm", "settings", "config", "request", "consensus"},
    "app": {"util", "httpc", "fsm", "settings", "config", "request", "consensus", "dispatch"},
    "front": {"util", "httpc", "fsm", "settings", "config", "request", "consensus", "dispatch",
              "app"},
    "main": {"util", "httpc", "fsm", "settings", "config", "request", "consensus", "dispatch",
             "app", "front"},
}

# Known edges against the rules, each with the reason it is still there. Keep this short.
EXCEPTIONS: set = set()

INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"')


def layer_of(rel):
    for name, pat in LAYERS:
        if re.fullmatch(pat, rel):
            return name
    return None


def main():
    root = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else
                           os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    problems = []
    checked = 0
    for dirpath, _, files in sorted(os.walk(os.path.join(root, "src"))):
        for f in sorted(files):
            if not f.endswith((".c", ".h")):
                continue
            path = os.path.join(dirpath, f)
            rel = os.path.relpath(path, root)
            src_layer = layer_of(rel)
            if src_layer is None:
                problems.append(f"{rel}: belongs to no layer (place it in scripts/check-layers.py)")
                continue
            with open(path, encoding="utf-8", errors="replace") as fh:
                for lineno, line in enumerate(fh, 1):
                    m = INCLUDE.match(line)
                    if not m:
                        continue
                    target = os.path.relpath(os.path.normpath(os.path.join(dirpath, m.group(1))),
                                             root)
                    if not target.startswith("src" + os.sep):
                        continue  # generated or outside the tree
                    checked += 1
                    dst_layer = layer_of(target)
                    if dst_layer is None or dst_layer == src_layer:
                        continue  # unplaced targets are reported as files of their own
                    if dst_layer in ALLOWED[src_layer] or (rel, target) in EXCEPTIONS:
                        continue
                    problems.append(f"{rel}:{lineno}: {src_layer} -> {dst_layer}: "
                                    f"includes {m.group(1)}")
    for p in problems:
        print(p, file=sys.stderr)
    if problems:
        print(f"check-layers: {len(problems)} include(s) across a forbidden edge "
              "(see docs/developing.md, \"Layers\")", file=sys.stderr)
        return 1
    print(f"check-layers: {checked} includes, every one within the layering")
    return 0


if __name__ == "__main__":
    sys.exit(main())
