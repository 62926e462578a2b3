#!/bin/bash
# CPU of each shard thread over a 5 s PUT run of one member: all shards together, and the shards
# other than the two busiest (shard 0 and, with one client, the shard holding the connection),
# in µs per request. Shows the apply work a write costs the shards it does not involve.
#   perf/cpu-per-shard.sh BIN_DIR SHARDS CLIENTS   (BIN_DIR holds tern and ternbench)
BIN=$1; SH=$2; CL=$3
W=$(mktemp -d); C=$((20000+RANDOM%20000)); P=$((C+1))
$BIN/tern --name m --data-dir $W/d --listen-client-urls http://127.0.0.1:$C --advertise-client-urls http://127.0.0.1:$C --listen-peer-urls http://127.0.0.1:$P --initial-advertise-peer-urls http://127.0.0.1:$P --initial-cluster m=http://127.0.0.1:$P --shards $SH >$W/log 2>&1 &
PID=$!
for i in $(seq 100); do curl -s http://127.0.0.1:$C/health >/dev/null && break; sleep 0.1; done
$BIN/ternbench --endpoints http://127.0.0.1:$C --op put --clients $CL --duration-secs 1 >/dev/null 2>&1
snap() { for t in /proc/$PID/task/*; do echo "$(basename $t) $(cat $t/comm) $(awk '{print $14+$15}' $t/stat)"; done | sort; }
snap > $W/a
OUT=$($BIN/ternbench --endpoints http://127.0.0.1:$C --op put --clients $CL --duration-secs 5 2>/dev/null | tail -1)
snap > $W/b
REQ=$(echo "$OUT" | awk '{print $5}')
join $W/a $W/b | awk -v req=$REQ -v tck=$(getconf CLK_TCK) '{d=$5-$3; if ($2 ~ /shard/) {print $2, d}}' | sort -k2 -n -r > $W/delta
TOTAL=$(awk '{s+=$2} END {print s}' $W/delta)
TOP2=$(head -2 $W/delta | awk '{s+=$2} END {print s}')
echo "shards=$SH clients=$CL requests=$REQ all-shards-us/req=$(echo "$TOTAL*10000/$REQ" | bc -l | xargs printf %.1f) other-shards-us/req=$(echo "($TOTAL-$TOP2)*10000/$REQ" | bc -l | xargs printf %.1f)"
kill $PID; wait $PID 2>/dev/null; rm -rf $W
