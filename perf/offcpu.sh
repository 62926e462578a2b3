#!/usr/bin/env bash
# Off-CPU view of tern under ternbench load: where its threads wait, and for how long.
#
#   perf/offcpu.sh [--op put|get] [--secs 10] [--clients 64] [--value-size 64]
#                  [--pid PID --endpoint http://HOST:PORT] [--out DIR] [--dwarf]
#
# Method: if bcc's `offcputime-bpfcc` is installed and works on this kernel, it is used
# (kernel-side aggregation, microseconds per stack). Otherwise (the usual case here: bcc needs
# headers of the running kernel) it records every `sched:sched_switch` system-wide with
# `perf record -e sched:sched_switch -a --call-graph fp` (`--dwarf`: user stacks too) and perf/offcpu_fold.py pairs each
# tern thread's switch-out with its next switch-in: the time in between is charged to the
# switch-out stack. The root frame under each thread is its state when it left the CPU:
# [S] = it blocked (sleep, io_uring wait, futex), [R] = it was preempted while runnable (CPU
# contention: on 2 cores with the load generator beside tern, expect some).
# Also writes `perf sched timehist`'s per-thread summary (run time, wait, scheduling delay).
# Output in --out (default perf/out/offcpu-<op>-<time>/): offcpu.svg, folded.txt,
# top-offcpu.txt, timehist-summary.txt, ternbench.txt, method.txt.
set -euo pipefail
# shellcheck source=perf/lib.sh
source "$(dirname "$0")/lib.sh"

usage() { sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; }

parse_common "$@"
# Frame pointers by default: kernel stacks (where a thread blocked) are complete, user stacks
# stop early (Rust omits frame pointers). --dwarf unwinds user stacks too, but a few seconds
# of switches are then hundreds of MB and perf script takes minutes.
CALLGRAPH=fp
for a in "${EXTRA[@]}"; do
    case "$a" in
    --dwarf) CALLGRAPH=dwarf,8192 ;;
    *) log "unknown flag $a"; usage; exit 2 ;;
    esac
done

need_perf
need_inferno
need_tracefs
build_bins
trap cleanup EXIT
if [ -z "$PID" ]; then
    start_tern
    PID=$TERN_PID
fi

start_load $((SECS + 2))
sleep 1
METHOD=perf
if command -v offcputime-bpfcc >/dev/null 2>&1; then
    log "trying offcputime-bpfcc for $SECS s"
    if offcputime-bpfcc -df -p "$PID" "$SECS" >"$OUT/folded.txt" 2>"$OUT/bcc.log" &&
        [ -s "$OUT/folded.txt" ]; then
        METHOD=bcc
    else
        log "offcputime-bpfcc failed (see bcc.log); using perf sched_switch"
    fi
fi
if [ "$METHOD" = perf ]; then
    log "recording sched:sched_switch system-wide for $SECS s (tern pid $PID)"
    perf record -e sched:sched_switch -a --call-graph "$CALLGRAPH" -o "$OUT/perf.data" \
        -- sleep "$SECS" >"$OUT/perf-record.log" 2>&1
    perf script -i "$OUT/perf.data" -F comm,pid,tid,time,event,trace,ip,sym 2>/dev/null |
        python3 "$REPO/perf/offcpu_fold.py" "$PID" >"$OUT/folded.txt"
    perf sched timehist -i "$OUT/perf.data" -s 2>/dev/null |
        awk -v pid="$PID" 'NR<=4 || index($0, "[" pid "/") || index($0, "/" pid "]") || /^ *Total|Terminated|Idle/' \
            >"$OUT/timehist-summary.txt" || true
fi
echo "off-CPU via $METHOD" >"$OUT/method.txt"
wait "$LOAD_PID" || true
LOAD_PID=""
cat "$OUT/ternbench.txt"

inferno-flamegraph --title "tern off-CPU, $OP ${VALUE_SIZE}B x $CLIENTS clients ($METHOD)" \
    --countname us --colors io <"$OUT/folded.txt" >"$OUT/offcpu.svg"
# Off-CPU microseconds per (thread, state, innermost frames).
python3 - "$OUT/folded.txt" >"$OUT/top-offcpu.txt" <<'EOF'
import collections, sys
tot = collections.Counter()
for line in open(sys.argv[1]):
    stack, _, n = line.rstrip().rpartition(" ")
    frames = stack.split(";")
    key = ";".join(frames[:2]) + " ... " + ";".join(frames[-3:])
    tot[key] += int(n)
all_us = sum(tot.values()) or 1
for k, v in tot.most_common(25):
    print(f"{v/1e3:10.1f} ms {100*v/all_us:5.1f}%  {k}")
EOF
echo "off-CPU ($METHOD), top stacks:"
head -12 "$OUT/top-offcpu.txt"
echo "flame graph: $OUT/offcpu.svg"
