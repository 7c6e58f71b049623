#!/bin/sh
# Start a local three-node clustermgr cluster on loopback and keep it running until Ctrl-C.
#
#   scripts/run-local.sh            start (or restart, keeping its data) the local cluster
#   scripts/run-local.sh --fresh    wipe the local cluster's data first
#
# Node ids 1, 2, 3; HTTP on 127.0.0.1:9998, 9999, 10000; raft on 127.0.0.1:10110, 10111, 10112.
# Once there is a leader, a simulated blobnode fleet (build/blobnode-sim: 3 hosts x 6 disks in
# idc z0, hosts on 127.0.0.1:18000-18002) speaking the protocol of current CubeFS blobnodes
# (v3.5.1-v3.5.3) registers as BLOBNODE services, as nodes (/node/add) and their disks, then
# heartbeats, so /stat and /topo/info show real numbers. A restart keeps the node ids.
# Configs, logs and data live under run/local/ in the checkout (git-ignored).
set -eu
cd "$(dirname "$0")/.."
ROOT=$(pwd)
RUN="$ROOT/run/local"

scripts/deps.sh
make -j"$(nproc)" >/dev/null

if [ "${1:-}" = "--fresh" ]; then
    rm -rf "$RUN"
fi
mkdir -p "$RUN"
# The simulated fleet speaks the current CubeFS protocol, whose daemons read task switches as
# true/false (docs/compatibility.md).
/usr/bin/python3 scripts/gen-config.py "$RUN" --data "$RUN/data" \
    --extra '{"task_switch_format":"current"}' >/dev/null

PIDS=""
SIM_PID=""
stop() {
    trap - INT TERM
    echo
    if [ -n "$SIM_PID" ]; then
        echo "stopping the blobnode fleet..."
        kill -TERM "$SIM_PID" 2>/dev/null || true
        wait "$SIM_PID" 2>/dev/null || true
    fi
    echo "stopping the cluster..."
    for p in $PIDS; do kill -TERM "$p" 2>/dev/null || true; done
    for p in $PIDS; do wait "$p" 2>/dev/null || true; done
    echo "stopped. Data is kept in $RUN/data (use --fresh to start over)."
    exit 0
}
trap stop INT TERM

for i in 1 2 3; do
    ./build/clustermgr -f "$RUN/node$i.conf" >>"$RUN/node$i.log" 2>&1 &
    PIDS="$PIDS $!"
done

echo "waiting for a leader..."
i=0
leader=""
while [ $i -lt 200 ]; do
    leader=$(curl -s --max-time 1 http://127.0.0.1:9998/stat 2>/dev/null |
        /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["leader_host"])' 2>/dev/null || true)
    [ -n "$leader" ] && break
    for p in $PIDS; do
        if ! kill -0 "$p" 2>/dev/null; then
            echo "a node exited; see $RUN/node*.log:"
            tail -n 5 "$RUN"/node*.log
            stop
        fi
    done
    sleep 0.1
    i=$((i + 1))
done
if [ -z "$leader" ]; then
    echo "no leader after 20 s; see $RUN/node*.log"
    stop
fi

./build/blobnode-sim --generation current --cm 127.0.0.1:9998,127.0.0.1:9999,127.0.0.1:10000 \
    --hosts 3 --disks 6 --idc z0 --port-base 18000 --interval 5 >>"$RUN/blobnode-sim.log" 2>&1 &
SIM_PID=$!

# wait until the fleet registered its nodes and disks (a host stops on an answer that makes a
# real blobnode exit; when all did, the simulator exits)
echo "waiting for the blobnode fleet to register..."
fleet="registering (see $RUN/blobnode-sim.log)"
i=0
while [ $i -lt 150 ]; do
    if ! kill -0 "$SIM_PID" 2>/dev/null; then
        fleet="STOPPED: every simulated blobnode exited; see $RUN/blobnode-sim.log:"
        tail -n 5 "$RUN/blobnode-sim.log"
        SIM_PID=""
        break
    fi
    # "<disks registered> <hosts stopped>"
    n=$(curl -s --max-time 1 http://127.0.0.1:18000/sim/stats 2>/dev/null |
        /usr/bin/python3 -c 'import json,sys; s=json.load(sys.stdin); print(s["registered"], s["hosts_stopped"])' \
            2>/dev/null || true)
    if [ "$n" = "18 0" ]; then
        fleet="3 blobnode nodes and 18 disks registered"
        break
    fi
    if [ -n "$n" ] && [ "${n#* }" != 0 ]; then
        fleet="${n#* } of 3 simulated blobnodes STOPPED; see $RUN/blobnode-sim.log"
        break
    fi
    sleep 0.1
    i=$((i + 1))
done

cat <<EOT

clustermgr is running: 3 nodes, leader at $leader
  nodes:  http://127.0.0.1:9998  http://127.0.0.1:9999  http://127.0.0.1:10000
  fleet:  3 simulated CubeFS v3.5 blobnodes x 6 disks on http://127.0.0.1:18000-18002,
          heartbeat every 5 s: $fleet
  logs:   $RUN/node1.log ... node3.log, $RUN/blobnode-sim.log

Try:
  curl -s http://127.0.0.1:9998/topo/info
  curl -s http://127.0.0.1:9998/stat
  curl -s -XPOST http://127.0.0.1:9999/config/set -d '{"key":"balance","value":"Enable"}'
  curl -s http://127.0.0.1:10000/config/get?key=balance
  curl -s 'http://127.0.0.1:9999/disk/list?count=3'
  curl -s http://127.0.0.1:18000/sim/stats
  curl -s http://127.0.0.1:18000/sim/hosts

Press Ctrl-C to stop the cluster.
EOT
wait
