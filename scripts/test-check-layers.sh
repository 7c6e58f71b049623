#!/bin/sh
# The include check passes on the tree and fails on planted violations of the two strict edges:
# consensus including HTTP (server or client), dispatch or the server's config, and the state
# machine including anything above util.
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
check="/usr/bin/python3 $here/scripts/check-layers.py"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

$check "$here" >/dev/null || { echo "test-check-layers: the tree itself fails the check" >&2; exit 1; }

plant() { # plant <file> <include>: copy the tree, add the include, expect a failure naming it
    rm -rf "$tmp/src" && cp -r "$here/src" "$tmp/src"
    printf '#include "%s"\n' "$2" >>"$tmp/$1"
    if $check "$tmp" >"$tmp/out" 2>&1; then
        echo "test-check-layers: $1 including $2 was not caught" >&2
        exit 1
    fi
    grep -q "^$1:[0-9]*: .*includes $2" "$tmp/out" || {
        echo "test-check-layers: the failure does not name $1 and $2:" >&2
        cat "$tmp/out" >&2
        exit 1
    }
}
plant src/raft/node.c ../http/server.h
plant src/raft/node.h ../dispatch/dispatch.h
plant src/raft/node.c ../client/httpc.h
plant src/fsm/fsm.h ../raft/node.h
plant src/fsm/mod_kv.c ../server/config.h
plant src/raft/node.h ../server/config.h
echo "test-check-layers: passes on the tree, fails on 6 planted violations"
