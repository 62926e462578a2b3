#!/usr/bin/env bash
# On-CPU flame graph of tern under ternbench load.
#
#   perf/flamegraph.sh [--op put|get] [--secs 10] [--clients 64] [--value-size 64]
#                      [--pid PID --endpoint http://HOST:PORT] [--out DIR] [--fp]
#
# Without --pid it builds (if needed) and starts a 1-member tern on 127.0.0.1 with a fresh data
# dir (extra tern flags via TERN_ARGS), drives it with ternbench for --secs seconds and records
# tern with `perf record -F 999 -g --call-graph dwarf` (`--fp` or a failing dwarf record falls
# back to frame pointers). With --pid it records that running tern and sends the load to
# --endpoint. Writes to --out (default perf/out/flamegraph-<op>-<time>/):
#   flame.svg     the flame graph (open in a browser; click to zoom)
#   folded.txt    collapsed stacks (inferno-collapse-perf)
#   top-self.txt  functions by self time (perf report --no-children)
#   ternbench.txt what the load measured
#   perf.data     the raw profile (perf report -i perf.data)
# Installs what it needs: linux-perf (apt) and inferno (cargo install).
set -euo pipefail
# shellcheck source=perf/lib.sh
source "$(dirname "$0")/lib.sh"

usage() { sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; }

parse_common "$@"
CALLGRAPH=dwarf
for a in "${EXTRA[@]}"; do
    case "$a" in
    --fp) CALLGRAPH=fp ;;
    *) log "unknown flag $a"; usage; exit 2 ;;
    esac
done

need_perf
need_inferno
build_bins
trap cleanup EXIT
if [ -z "$PID" ]; then
    start_tern
    PID=$TERN_PID
fi

# Load runs 1 s longer on each side than the recording, so the profile is all steady state.
start_load $((SECS + 2))
sleep 1
log "recording pid $PID for $SECS s ($OP, $CLIENTS clients, $VALUE_SIZE B, call graph $CALLGRAPH)"
record() {
    perf record -F 999 -g --call-graph "$1" -p "$PID" -o "$OUT/perf.data" -- sleep "$SECS" \
        >"$OUT/perf-record.log" 2>&1
}
if ! record "$CALLGRAPH"; then
    log "perf record --call-graph $CALLGRAPH failed (see perf-record.log); falling back to fp"
    CALLGRAPH=fp
    record fp
fi
wait "$LOAD_PID" || true
LOAD_PID=""
cat "$OUT/ternbench.txt"

log "rendering"
perf script -i "$OUT/perf.data" 2>/dev/null | inferno-collapse-perf >"$OUT/folded.txt"
inferno-flamegraph --title "tern $OP ${VALUE_SIZE}B x $CLIENTS clients ($CALLGRAPH)" \
    <"$OUT/folded.txt" >"$OUT/flame.svg"
# Whole reports to files first: `head` on a pipe would kill perf report (and this script).
perf report -i "$OUT/perf.data" --no-children --sort symbol --stdio -g none \
    >"$OUT/report-symbol.txt" 2>/dev/null || true
perf report -i "$OUT/perf.data" --no-children --sort comm --stdio -g none \
    >"$OUT/report-thread.txt" 2>/dev/null || true
grep -E '^ +[0-9.]+%' "$OUT/report-symbol.txt" | sed -E 's/ +- +- *$//; s/ +$//' |
    head -40 >"$OUT/top-self.txt" || true
echo "self time by thread:"
grep -E '^ +[0-9.]+%' "$OUT/report-thread.txt" | sed -E 's/ +- +- *$//; s/ +$//' | head -8 || true
echo "top 10 by self time:"
head -10 "$OUT/top-self.txt"
echo "flame graph: $OUT/flame.svg"
