# Shared helpers of perf/flamegraph.sh and perf/offcpu.sh (sourced, not run).
#
# Sets REPO, BIN (the release binaries' directory), and provides: need_perf, need_inferno,
# build_bins, start_tern (sets TERN_PID, ENDPOINT), start_load, cleanup.

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="${CARGO_TARGET_DIR:-$REPO/target}/release"
STARTED_PID=""
LOAD_PID=""
WORK=""

log() { echo "[$(basename "$0")] $*" >&2; }

# perf itself: Debian's linux-perf (or Ubuntu's linux-tools-generic).
need_perf() {
    if command -v perf >/dev/null 2>&1 && perf --version >/dev/null 2>&1; then return; fi
    log "installing perf"
    apt-get update -qq || true
    apt-get install -y -qq linux-perf >/dev/null 2>&1 || apt-get install -y -qq linux-tools-generic >/dev/null
    command -v perf >/dev/null || { log "perf is not available"; exit 1; }
}

# inferno's collapse/flamegraph tools (cargo install on first use).
need_inferno() {
    export PATH="$HOME/.cargo/bin:$PATH"
    if command -v inferno-flamegraph >/dev/null 2>&1; then return; fi
    log "installing inferno (cargo install inferno --locked; takes a few minutes once)"
    cargo install inferno --locked --quiet
}

# Tracepoints (sched:*) need tracefs.
need_tracefs() {
    if [ -z "$(ls -A /sys/kernel/tracing 2>/dev/null)" ]; then
        mount -t tracefs nodev /sys/kernel/tracing 2>/dev/null || true
    fi
}

build_bins() {
    if [ -x "$BIN/tern" ] && [ -x "$BIN/ternbench" ] && [ -z "${REBUILD:-}" ]; then return; fi
    log "building tern and ternbench (release) into $BIN"
    (cd "$REPO" && cargo build --release --quiet --bin tern --bin ternbench)
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# Starts a 1-member tern on 127.0.0.1 with a fresh data dir; sets TERN_PID and ENDPOINT.
start_tern() {
    local cport pport
    cport=$(free_port)
    pport=$(free_port)
    ENDPOINT="http://127.0.0.1:$cport"
    "$BIN/tern" --name perf --data-dir "$WORK/data" \
        --listen-client-urls "$ENDPOINT" --advertise-client-urls "$ENDPOINT" \
        --listen-peer-urls "http://127.0.0.1:$pport" \
        --initial-advertise-peer-urls "http://127.0.0.1:$pport" \
        --initial-cluster "perf=http://127.0.0.1:$pport" ${TERN_ARGS:-} \
        >"$WORK/tern.log" 2>&1 &
    TERN_PID=$!
    STARTED_PID=$TERN_PID
    for _ in $(seq 100); do
        if curl -fs "$ENDPOINT/health" >/dev/null 2>&1; then
            log "tern pid $TERN_PID on $ENDPOINT"
            return
        fi
        sleep 0.1
    done
    log "tern did not become healthy:"
    cat "$WORK/tern.log" >&2
    exit 1
}

# Starts a cluster of one member per address in $IPS (names m1, m2, …; peer port 2380, client
# port 2379; data and logs under $2) with binary $1 and extra flags $3 (etcd gets --enable-v2);
# sets MEMBER_PIDS, and LEADER to the client URL of a member that answers /v2/stats/leader
# (empty when none does within 10 s).
start_members() {
  local bin=$1 dir=$2 extra=${3:-} ip n=0 cluster="" sep=""
  case $bin in *etcd) extra="--enable-v2" ;; esac
  for ip in $IPS; do n=$((n + 1)); cluster+="${sep}m$n=http://$ip:2380"; sep=,; done
  MEMBER_PIDS=()
  n=0
  for ip in $IPS; do
    n=$((n + 1))
    # shellcheck disable=SC2086
    "$bin" --name "m$n" --data-dir "$dir/m$n" --listen-peer-urls "http://$ip:2380" \
      --initial-advertise-peer-urls "http://$ip:2380" --listen-client-urls "http://$ip:2379" \
      --advertise-client-urls "http://$ip:2379" --initial-cluster "$cluster" \
      --initial-cluster-state new $extra >"$dir/m$n.log" 2>&1 &
    MEMBER_PIDS+=($!)
  done
  LEADER=""
  for _ in $(seq 100); do
    for ip in $IPS; do
      curl -sf "http://$ip:2379/v2/stats/leader" >/dev/null 2>&1 && LEADER="http://$ip:2379"
    done
    [ -n "$LEADER" ] && break
    sleep 0.1
  done
}

# Drives load with ternbench in the background for $1 seconds (OP, CLIENTS, VALUE_SIZE).
start_load() {
    "$BIN/ternbench" --endpoints "$ENDPOINT" --op "$OP" --clients "$CLIENTS" \
        --value-size "$VALUE_SIZE" --duration-secs "$1" >"$WORK/ternbench.txt" 2>&1 &
    LOAD_PID=$!
}

cleanup() {
    if [ -n "$LOAD_PID" ]; then kill "$LOAD_PID" 2>/dev/null || true; fi
    if [ -n "$STARTED_PID" ]; then
        kill "$STARTED_PID" 2>/dev/null || true
        wait "$STARTED_PID" 2>/dev/null || true
    fi
    if [ -n "$WORK" ]; then rm -rf "$WORK/data"; fi
}

# Common flags: --pid P (profile a running tern; --endpoint its client URL), --op, --secs,
# --clients, --value-size, --out DIR.
parse_common() {
    PID=""
    ENDPOINT=""
    OP=put
    SECS=10
    CLIENTS=64
    VALUE_SIZE=64
    OUT=""
    EXTRA=()
    while [ $# -gt 0 ]; do
        case "$1" in
        --pid) PID=$2; shift 2 ;;
        --endpoint) ENDPOINT=$2; shift 2 ;;
        --op) OP=$2; shift 2 ;;
        --secs) SECS=$2; shift 2 ;;
        --clients) CLIENTS=$2; shift 2 ;;
        --value-size) VALUE_SIZE=$2; shift 2 ;;
        --out) OUT=$2; shift 2 ;;
        -h | --help) usage; exit 0 ;;
        *) EXTRA+=("$1"); shift ;;
        esac
    done
    if [ -n "$PID" ] && [ -z "$ENDPOINT" ]; then
        ENDPOINT=http://127.0.0.1:2379
    fi
    OUT="${OUT:-$REPO/perf/out/$(basename "$0" .sh)-$OP-$(date +%Y%m%d-%H%M%S)}"
    mkdir -p "$OUT"
    WORK="$OUT"
}
