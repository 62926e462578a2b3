#!/bin/bash
# perf/single-client.sh: one client's acknowledged writes against the floor, tern beside etcd,
# cells interleaved (issue 18's target 1).
#
# Each round first measures the floor (`ternbench --floor`: 4 KiB O_DIRECT write + fdatasync
# p50 in this repository's file system plus a loopback round trip p50; with --members 3 one
# more round trip, the leader's hop to a follower), then for each server (etcd when
# /usr/bin/etcd exists, tern, and TERN_BASE when set) starts a fresh cluster on
# 127.0.0.11(-13), runs one client's PUTs of 64 B against the leader and reports req/s, p50,
# p90, p90 / floor and the share of the floor's rate (req/s × floor). The lowest floor of all
# rounds is the one the summary line compares with (noise only ever adds latency).
#
# Usage: perf/single-client.sh [--members 1|3] [--secs S] [--rounds R]
# TERN_ARGS adds flags to every tern member (e.g. "--shards 1").
set -euo pipefail
cd "$(dirname "$0")/.."
source perf/lib.sh

members=1 secs=5 rounds=3
while [ $# -gt 0 ]; do
  case "$1" in
    --members) members=$2; shift 2 ;;
    --secs) secs=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
case $members in 1) IPS="127.0.0.11" ;; 3) IPS="127.0.0.11 127.0.0.12 127.0.0.13" ;;
  *) echo "--members is 1 or 3" >&2; exit 2 ;; esac
build_bins
BENCH=$BIN/ternbench
WORK=$(mktemp -d -p "$REPO")
PIDS=()
trap 'kill "${PIDS[@]}" 2>/dev/null || true; rm -rf "$WORK"' EXIT

floor_ms() { # the floor of this run's round: fsync p50 + rtt p50 (+ one more rtt with 3 members)
  "$BENCH" --floor "$WORK" --json | python3 -c "import json,sys; f=json.load(sys.stdin);
print('%.3f %.3f %.3f' % (f['fsync_p50_ms'] + f['rtt_p50_ms'] * (2 if $members == 3 else 1),
      f['fsync_p50_ms'], f['rtt_p50_ms']))"
}

one() { # label, server binary, floor ms
  local label=$1 bin=$2 floor=$3 dir="$WORK/run"
  mkdir -p "$dir"
  start_members "$bin" "$dir" "${TERN_ARGS:-}"
  local pids=("${MEMBER_PIDS[@]}") ep=$LEADER
  PIDS+=("${pids[@]}")
  sleep 1
  if [ -z "$ep" ]; then
    echo "| $label | no leader within 10 s | | | | | |"
  else
    # The result row only (a run with failed requests adds a "first error" line after it);
    # errors, when any, are named in the last column.
    "$BENCH" --endpoints "$ep" --op put --clients 1 --duration-secs "$secs" 2>&1 |
      awk -v l="$label" -v f="$floor" '$1 == "PUT" {
        printf "| %-6s | %s | %s | %s | %s | %.2f | %.0f %%%s |\n", l, $7, $8, $9, $10,
          $9 / f, $7 * f / 10, ($6 > 0 ? " (" $6 " errors)" : "") }' | tee -a "$WORK/rows" || true
  fi
  kill "${pids[@]}" 2>/dev/null || true; wait "${pids[@]}" 2>/dev/null || true
  rm -rf "$dir"
}

echo "$members member(s), PUT 64 B, 1 client, ${secs} s per cell, $rounds round(s), $(date -u '+%F %H:%M') UTC, $(git rev-parse --short HEAD)"
echo
echo "| server | req/s | p50 ms | p90 ms | p99 ms | p90 / floor | share of floor |"
echo "|---|---:|---:|---:|---:|---:|---:|"
for r in $(seq "$rounds"); do
  line=$(floor_ms) || { echo "ternbench --floor failed in $WORK" >&2; exit 1; }
  read -r floor fsync rtt <<<"$line"
  echo "$fsync $rtt" >>"$WORK/floors"
  echo "| floor, round $r | $(awk -v f="$floor" 'BEGIN {printf "%.0f", 1000 / f}') | $floor | | | | (fdatasync $fsync + round trip $rtt$([ "$members" = 3 ] && echo ' × 2')) |"
  [ -x /usr/bin/etcd ] && one etcd /usr/bin/etcd "$floor"
  one tern "$BIN/tern" "$floor"
  if [ -n "${TERN_BASE:-}" ]; then one base "$TERN_BASE" "$floor"; fi
done

# The lowest floor of the run (lowest fdatasync p50 plus lowest round trip p50), and each
# server's range against it.
low=$(awk -v m="$members" 'NR == 1 || $1 < f {f = $1} NR == 1 || $2 < r {r = $2}
  END {printf "%.3f", f + r * (m == 3 ? 2 : 1)}' "$WORK/floors")
echo
echo "Against the lowest floor of the run, $low ms:"
for label in etcd tern base; do
  grep -q "^| $label " "$WORK/rows" || continue
  awk -F'|' -v l="$label" -v f="$low" '$2 ~ "^ " l " *$" {
      p90 = $5 + 0; rate = $3 + 0
      if (n == 0 || p90 < plo) plo = p90; if (n == 0 || p90 > phi) phi = p90
      if (n == 0 || rate < rlo) rlo = rate; if (n == 0 || rate > rhi) rhi = rate; n++ }
    END {printf "- %s: p90 %.2f-%.2f x the floor, %.0f-%.0f %% of its rate\n",
      l, plo / f, phi / f, rlo * f / 10, rhi * f / 10}' "$WORK/rows"
done
