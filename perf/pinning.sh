#!/bin/bash
# Pinned vs unpinned shards (--pin-shards), on an idle host and on a shared one (a busy loop
# in the background standing for a co-located process), 1 member, default shards:
#   perf/pinning.sh [BIN_DIR] [ROUNDS]   (BIN_DIR holds tern and ternbench; default target/release)
# Prints req/s, p50 and p90 ms for PUT 1 client, GET 64 clients, PUT 64 clients, 4 s each.
BIN=${1:-$(cd "$(dirname "$0")/.." && pwd)/target/release}; ROUNDS=${2:-2}
run_cell() { # endpoint op clients
  $BIN/ternbench --endpoints $1 --op $2 --clients $3 --duration-secs 4 2>/dev/null | tail -1 | awk "{print \$7, \$8, \$9}"
}
for r in $(seq $ROUNDS); do
for host in idle shared; do
  HOG=""
  if [ $host = shared ]; then (while :; do :; done) & HOG=$!; fi
  for pin in no yes; do
    W=$(mktemp -d); C=$((20000+RANDOM%20000)); P=$((C+1))
    EXTRA=""; [ $pin = yes ] && EXTRA="--pin-shards"
    $BIN/tern --name m --data-dir $W/d --listen-client-urls http://127.0.0.1:$C --advertise-client-urls http://127.0.0.1:$C --listen-peer-urls http://127.0.0.1:$P --initial-advertise-peer-urls http://127.0.0.1:$P --initial-cluster m=http://127.0.0.1:$P $EXTRA >$W/log 2>&1 &
    PID=$!
    for i in $(seq 100); do curl -s http://127.0.0.1:$C/health >/dev/null && break; sleep 0.1; done
    E=http://127.0.0.1:$C
    echo "round $r host=$host pin=$pin | PUT 1c: $(run_cell $E put 1) | GET 64c: $(run_cell $E get 64) | PUT 64c: $(run_cell $E put 64)"
    kill $PID; wait $PID 2>/dev/null; rm -rf $W
  done
  [ -n "$HOG" ] && kill $HOG
done
done
