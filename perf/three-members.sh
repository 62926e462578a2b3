#!/bin/bash
# perf/three-members.sh: what one write costs a 3-member cluster, tern beside etcd, cells
# interleaved.
#
# For each round and each server (etcd when /usr/bin/etcd exists, tern, and TERN_BASE when
# set) it starts a fresh 3-member cluster on 127.0.0.11-13, runs ternbench PUTs against the
# leader (or spread over all members with --all) for each client count, and reports
# throughput, latency and the CPU (user + system) of the three server processes together per
# request, and the user part alone.
#
# Usage: perf/three-members.sh [--clients "1 64"] [--secs S] [--rounds R] [--all]
# TERN_BASE=/path/to/another/tern adds its rows (a build of an earlier commit, for
# before/after figures in the same run); TERN_ARGS adds flags to every tern member (e.g.
# "--shards 1").
set -euo pipefail
cd "$(dirname "$0")/.."
source perf/lib.sh

clients="1 64" secs=5 rounds=3 all=0
while [ $# -gt 0 ]; do
  case "$1" in
    --clients) clients=$2; shift 2 ;;
    --secs) secs=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --all) all=1; shift ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
build_bins
BENCH=$BIN/ternbench
TICK=$(getconf CLK_TCK)
IPS="127.0.0.11 127.0.0.12 127.0.0.13"

# user and system ticks of the given processes together
ticks() { for p in "$@"; do awk '{print $14, $15}' "/proc/$p/stat"; done | awk '{u+=$1; s+=$2} END {print u, s}'; }

one() { # label, server binary
  local label=$1 bin=$2
  local dir; dir=$(mktemp -d)
  start_members "$bin" "$dir" "${TERN_ARGS:-}"
  local pids=("${MEMBER_PIDS[@]}") ep=$LEADER
  sleep 1
  [ $all = 1 ] && ep="http://127.0.0.11:2379,http://127.0.0.12:2379,http://127.0.0.13:2379"
  for c in $clients; do
    local u0 s0 u1 s1 out
    read -r u0 s0 < <(ticks "${pids[@]}")
    out=$("$BENCH" --endpoints "$ep" --op put --clients "$c" --duration-secs "$secs" 2>&1 | tail -1)
    read -r u1 s1 < <(ticks "${pids[@]}")
    echo "$out" | awk -v l="$label" -v c="$c" -v du=$((u1 - u0)) -v ds=$((s1 - s0)) -v tick="$TICK" \
      '{n=$5; printf "| %-6s | %s | %s | %s | %s | %s | %.1f | %.1f |\n", l, c, $7, $8, $9, $10,
        (du+ds)*1e6/tick/n, du*1e6/tick/n}'
  done
  kill "${pids[@]}"; wait "${pids[@]}" 2>/dev/null || true
  rm -rf "$dir"
}

echo "3 members, PUT 64 B to $([ $all = 1 ] && echo 'all members' || echo 'the leader'), ${secs} s per cell, $rounds round(s), $(date -u '+%F %H:%M') UTC, $(git rev-parse --short HEAD)"
echo
echo "| server | clients | req/s | p50 ms | p90 ms | p99 ms | CPU µs/req (3 members) | user µs/req |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|"
for _ in $(seq "$rounds"); do
  [ -x /usr/bin/etcd ] && one etcd /usr/bin/etcd
  one tern "$BIN/tern"
  if [ -n "${TERN_BASE:-}" ]; then one base "$TERN_BASE"; fi
done
