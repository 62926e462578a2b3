#!/bin/bash
# perf/per-request.sh: what one request costs the server, tern beside etcd, cells interleaved.
#
# For each round and each server (etcd when /usr/bin/etcd exists, tern with its default
# shards, tern --shards 1) it starts a fresh 1-member server on 127.0.0.1, runs ternbench
# against it and reports, per request: throughput and latency (ternbench), the server
# process's CPU (user + system of all its threads, /proc/<pid>/task/*/stat, and the system part), its context
# switches (/proc/<pid>/task/*/status) and, when perf can count syscalls (root),
# io_uring_enter calls. Which tern shard holds the connection changes from start to start, so
# 1-client figures for the default shard count are bimodal; the `conn` column says where it was
# (the shard that made the sendto calls).
#
# The first row of each round, `responder`, is `ternbench --responder`: a do-nothing epoll
# server answering every request with a fixed-shape body, one read and one write each. Its CPU
# per request is almost all kernel time (loopback TCP, wake-ups, system calls): roughly what a
# plain epoll server cannot avoid on this machine, so a server's CPU above it is its own work.
#
# Usage: perf/per-request.sh [--op put|get] [--clients N] [--secs S] [--rounds R]
# TERN_BASE=/path/to/another/tern adds its two rows (a build of an earlier commit, for
# before/after figures in the same run).
set -euo pipefail
cd "$(dirname "$0")/.."
source perf/lib.sh

op=put clients=1 secs=4 rounds=3
while [ $# -gt 0 ]; do
  case "$1" in
    --op) op=$2; shift 2 ;;
    --clients) clients=$2; shift 2 ;;
    --secs) secs=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
build_bins
TERN=$BIN/tern
BENCH=$BIN/ternbench
PORT=23790 PEER=23800
TICK=$(getconf CLK_TCK)
URLS="--listen-client-urls http://127.0.0.1:$PORT --advertise-client-urls http://127.0.0.1:$PORT
  --listen-peer-urls http://127.0.0.1:$PEER --initial-advertise-peer-urls http://127.0.0.1:$PEER
  --initial-cluster default=http://127.0.0.1:$PEER"
can_count=0
if perf stat -e syscalls:sys_enter_io_uring_enter -- true >/dev/null 2>&1; then can_count=1; fi

# cpu ticks, context switches and system ticks of every thread:
# "tid comm ticks switches system_ticks"
threads() {
  for t in /proc/$1/task/*; do
    echo "$(basename "$t") $(tr ' ' _ < "$t/comm") $(awk '{print $14+$15}' "$t/stat" 2>/dev/null || echo 0) \
      $(awk '/ctxt_switches/ {s+=$2} END {print s+0}' "$t/status" 2>/dev/null || echo 0) \
      $(awk '{print $15}' "$t/stat" 2>/dev/null || echo 0)"
  done
}

one() { # label, server command...
  local label=$1; shift
  local dir; dir=$(mktemp -d)
  if [ "$label" = responder ]; then
    "$@" >"$dir/log" 2>&1 &
  else
    "$@" --data-dir "$dir/data" >"$dir/log" 2>&1 &
  fi
  local pid=$!
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/version" >/dev/null && break; sleep 0.1; done
  sleep 0.3
  threads $pid >"$dir/before"
  if [ $can_count = 1 ]; then
    perf stat --per-thread -x, -e syscalls:sys_enter_io_uring_enter,syscalls:sys_enter_sendto \
      -p $pid -o "$dir/stat" &
    local stat=$!
  fi
  local out
  out=$("$BENCH" --endpoints "http://127.0.0.1:$PORT" --op "$op" --clients "$clients" \
    --duration-secs "$secs" 2>&1 | tail -1)
  threads $pid >"$dir/after"
  if [ $can_count = 1 ]; then kill -INT $stat; wait $stat 2>/dev/null || true; fi
  kill $pid; wait $pid 2>/dev/null || true
  local n; n=$(echo "$out" | awk '{print $5}')
  local cpu cs sys
  cpu=$(join "$dir/before" "$dir/after" |
    awk -v n="$n" -v tick="$TICK" '{t+=$7-$3} END {printf "%.1f", t*1e6/tick/n}')
  sys=$(join "$dir/before" "$dir/after" |
    awk -v n="$n" -v tick="$TICK" '{t+=$9-$5} END {printf "%.1f", t*1e6/tick/n}')
  cs=$(join "$dir/before" "$dir/after" | awk -v n="$n" '{c+=$8-$4} END {printf "%.2f", c/n}')
  local enters=- conn=-
  if [ $can_count = 1 ]; then
    enters=$(awk -F, -v n="$n" '/io_uring_enter/ {e+=$2} END {printf "%.1f", e/n}' "$dir/stat")
    conn=$(awk -F, '/sendto/ && $2+0 > 0 {split($1, a, "-"); print a[2]"-"a[3]; exit}' "$dir/stat")
  fi
  printf "| %-13s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n" "$label" \
    "$(echo "$out" | awk '{print $7}')" "$(echo "$out" | awk '{print $8}')" \
    "$(echo "$out" | awk '{print $9}')" "$(echo "$out" | awk '{print $10}')" "$cpu" "$sys" "$cs" \
    "$enters" "$conn"
  rm -rf "$dir"
}

echo "$op, $clients client(s), ${secs} s per cell, $rounds round(s), $(date -u '+%F %H:%M') UTC, $(git rev-parse --short HEAD)"
echo
echo "| server | req/s | p50 ms | p90 ms | p99 ms | server CPU µs/req | of which kernel | context switches/req | io_uring_enter/req | conn |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"
for _ in $(seq "$rounds"); do
  one responder "$BENCH" --responder "127.0.0.1:$PORT"
  # shellcheck disable=SC2086
  [ -x /usr/bin/etcd ] && one etcd /usr/bin/etcd --enable-v2 $URLS
  # shellcheck disable=SC2086
  one tern $TERN $URLS
  # shellcheck disable=SC2086
  one "tern --shards 1" $TERN $URLS --shards 1
  if [ -n "${TERN_BASE:-}" ]; then
    # shellcheck disable=SC2086
    one "base" "$TERN_BASE" $URLS
    # shellcheck disable=SC2086
    one "base --shards 1" "$TERN_BASE" $URLS --shards 1
  fi
done
