#!/usr/bin/env bash
# CPU time per request, split between the server and the load generator, for tern and etcd
# under the same load on this machine: the budget that decides what throughput ratio is possible
# when both share the cores.
#
#   perf/cpu-per-request.sh [--op get|put] [--clients N] [--secs S] [--rounds R] [--shards "1 2 4 8"]
#
# With --shards, each round runs one tern per listed `--shards` value (then etcd once), to see
# how the CPU per request moves with the shard count.
# For each round, starts a fresh 1-member tern and (when /usr/bin/etcd exists) a fresh 1-member
# etcd (--enable-v2), runs ternbench against each for S seconds, and reads user+system CPU of
# both processes from /proc/<pid>/stat before and after. Prints, per server: requests/s, µs of
# server CPU per request (user / system), µs of load-generator CPU per request, and the share
# of the two cores the pair used.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

OP=get
CLIENTS=64
SECS=5
ROUNDS=2
SHARDS=""
while [ $# -gt 0 ]; do
    case "$1" in
        --op) OP="$2"; shift 2 ;;
        --clients) CLIENTS="$2"; shift 2 ;;
        --secs) SECS="$2"; shift 2 ;;
        --rounds) ROUNDS="$2"; shift 2 ;;
        --shards) SHARDS="$2"; shift 2 ;;
        *) log "unknown argument $1"; exit 2 ;;
    esac
done

build_bins
WORK="$(mktemp -d /tmp/tern-cpu-XXXXXX)"
trap 'kill $SERVER_PID 2>/dev/null || true; rm -rf "$WORK"' EXIT
mkdir -p "$WORK"
TICK=$(getconf CLK_TCK)
SERVER_PID=""

# user and system ticks of a process (all threads).
ticks() { awk '{print $14, $15}' "/proc/$1/stat"; }

measure() { # name endpoint
    local name="$1" endpoint="$2"
    # Warm up (connections, the key for GET), then measure one run of SECS seconds.
    "$BIN/ternbench" --endpoints "$endpoint" --op "$OP" --clients "$CLIENTS" \
        --duration-secs 1 >/dev/null 2>&1
    read -r su0 ss0 < <(ticks "$SERVER_PID")
    /usr/bin/time -f "%U %S" -o "$WORK/load-cpu" "$BIN/ternbench" --endpoints "$endpoint" \
        --op "$OP" --clients "$CLIENTS" --duration-secs "$SECS" --json >"$WORK/bench.json" 2>/dev/null
    read -r su1 ss1 < <(ticks "$SERVER_PID")
    read -r lu ls < "$WORK/load-cpu"
    python3 - "$name" "$WORK/bench.json" "$SECS" "$TICK" "$su0" "$ss0" "$su1" "$ss1" "$lu" "$ls" <<'EOF2'
import json, sys
name, path = sys.argv[1], sys.argv[2]
secs, tick = float(sys.argv[3]), int(sys.argv[4])
su0, ss0, su1, ss1 = map(int, sys.argv[5:9])
lu, ls = float(sys.argv[9]), float(sys.argv[10])
r = json.load(open(path))
r = r[0] if isinstance(r, list) else r
n = r["requests"]
su, ss = (su1 - su0) / tick, (ss1 - ss0) / tick
us = lambda t: t / n * 1e6
print(f"| {name} | {n / secs:,.0f} | {us(su + ss):.1f} ({us(su):.1f} / {us(ss):.1f}) "
      f"| {us(lu + ls):.1f} ({us(lu):.1f} / {us(ls):.1f}) | {(su + ss + lu + ls) / secs:.2f} |")
EOF2
}

start_etcd() {
    local cport pport
    cport=$(free_port)
    pport=$(free_port)
    ENDPOINT="http://127.0.0.1:$cport"
    /usr/bin/etcd --enable-v2 --name perf --data-dir "$WORK/etcd" \
        --listen-client-urls "$ENDPOINT" --advertise-client-urls "$ENDPOINT" \
        --listen-peer-urls "http://127.0.0.1:$pport" \
        --initial-advertise-peer-urls "http://127.0.0.1:$pport" \
        --initial-cluster "perf=http://127.0.0.1:$pport" >"$WORK/etcd.log" 2>&1 &
    SERVER_PID=$!
    for _ in $(seq 100); do
        curl -fs "$ENDPOINT/version" >/dev/null 2>&1 && return
        sleep 0.1
    done
    log "etcd did not start"; exit 1
}

echo "$OP, $CLIENTS clients, $SECS s per run, 1 member, ternbench 1 thread; CPU µs per request (user / system)"
echo
echo "| server | req/s | server CPU µs/req | load generator CPU µs/req | cores used |"
echo "|---|---:|---:|---:|---:|"
for _ in $(seq "$ROUNDS"); do
    for shards in ${SHARDS:-default}; do
        rm -rf "$WORK/data" "$WORK/etcd"
        if [ "$shards" = default ]; then
            start_tern
            label=tern
        else
            TERN_ARGS="${TERN_ARGS:-} --shards $shards" start_tern
            label="tern --shards $shards"
        fi
        SERVER_PID=$TERN_PID
        measure "$label" "$ENDPOINT"
        kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true
    done
    if [ -x /usr/bin/etcd ]; then
        start_etcd
        measure etcd "$ENDPOINT"
        kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true
    fi
done
