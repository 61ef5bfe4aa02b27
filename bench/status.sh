#!/usr/bin/env bash
# bench/status.sh: what the control socket and the metrics page cost.
#
#   sudo bash bench/status.sh > table.md      (as root; progress on stderr)
#
# Runs the shipped static `init` (bash .ci/release) as PID 1 (`unshare
# --pid`) with STATUS_WORKERS workers (`cinit-demo serve` on one --listen
# socket), its control socket and `--metrics`, and measures:
#   the time of one answer (a new connection each time, as a client or a
#   scraper makes), STATUS_RUNS times each: `status` as JSON and as text
#   (each reads every worker's memory and CPU from /proc), `ready`, and a
#   `GET /metrics` scrape; targets: status and scrape within 5 ms with 64
#   workers;
#   the init's idle wake-ups over STATUS_IDLE_SECS with both sockets open,
#   after the requests, against the same init with `--control none` and no
#   metrics (target: no change, 0).
# Prints a header (bench/header.sh) and one markdown table on stdout.
#
# Environment: CINIT_BIN / DEMO_BIN skip the build; STATUS_WORKERS (default
# 64), STATUS_RUNS (default 200), STATUS_IDLE_SECS (default 10).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=bench/header.sh
. "$ROOT/bench/header.sh"
WORKERS=${STATUS_WORKERS:-64}
RUNS=${STATUS_RUNS:-200}
IDLE_SECS=${STATUS_IDLE_SECS:-10}

log() { printf '[status %3ds] %s\n' "$SECONDS" "$*" >&2; }
die() { log "error: $*"; exit 1; }
[[ $(id -u) == 0 ]] || die "run as root (unshare --pid needs it)"
command -v python3 >/dev/null || bench_need_packages python3
command -v file >/dev/null || bench_need_packages file

if [[ -z ${CINIT_BIN:-} ]]; then
    log "building the static binaries (bash .ci/release)"
    bash "$ROOT/.ci/release" >&2
    rel=${CARGO_TARGET_DIR:-$ROOT/target}/x86_64-unknown-linux-musl/release
    CINIT_BIN=$rel/init
    DEMO_BIN=${DEMO_BIN:-$rel/cinit-demo}
fi
DEMO_BIN=${DEMO_BIN:-$(dirname "$CINIT_BIN")/cinit-demo}

WORK=$(mktemp -d /tmp/status-bench.XXXXXX)
UNSHARES=()
cleanup() {
    for u in "${UNSHARES[@]}"; do kill -KILL "$u" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT

ctxt() { cat /proc/"$1"/task/*/status | awk '/ctxt_switches/{s+=$2} END{print s}'; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# start_init NAME ARGS...: runs the init as PID 1; sets INIT_PID.
start_init() {
    local name=$1
    shift
    unshare --pid --fork --kill-child --mount-proc "$CINIT_BIN" "$@" \
        </dev/null >/dev/null 2>"$WORK/$name.log" &
    local u=$!
    UNSHARES+=("$u")
    INIT_PID=
    for _ in $(seq 200); do
        INIT_PID=$(cut -d' ' -f1 /proc/"$u"/task/"$u"/children 2>/dev/null || true)
        [[ -n $INIT_PID ]] && break
        sleep 0.05
    done
    [[ -n $INIT_PID ]] || die "$name: the init did not start"
}

wait_ready() {
    for _ in $(seq 600); do
        "$CINIT_BIN" --control "$1" --probe ready >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    die "the init never got ready (log: $(tail -3 "$2"))"
}

idle() { # PID: context switches over IDLE_SECS
    local a b
    a=$(ctxt "$1")
    sleep "$IDLE_SECS"
    b=$(ctxt "$1")
    echo $((b - a))
}

SOCK=$WORK/c.sock
PORT=$(free_port)
log "init with $WORKERS workers, control socket and metrics on 127.0.0.1:$PORT"
start_init served --control "$SOCK" --metrics "127.0.0.1:$PORT" --workers "$WORKERS" \
    --max-workers "$WORKERS" --listen 127.0.0.1:0 -- "$DEMO_BIN" serve
SERVED=$INIT_PID
wait_ready "$SOCK" "$WORK/served.log"
sleep 1
log "timing $RUNS answers of each kind"
python3 "$ROOT/bench/status/client.py" "$SOCK" "$PORT" "$RUNS" >"$WORK/times"
log "idle wake-ups over ${IDLE_SECS}s, sockets open"
IDLE_ON=$(idle "$SERVED")

log "the same init with --control none and no metrics"
start_init bare --control none --workers "$WORKERS" --max-workers "$WORKERS" \
    --listen 127.0.0.1:0 -- "$DEMO_BIN" serve
BARE=$INIT_PID
for _ in $(seq 600); do
    [[ $(grep -c 'ready: ' "$WORK/bare.log" || true) -gt 0 ]] && break
    sleep 0.1
done
sleep 1
IDLE_OFF=$(idle "$BARE")

bench_header "bash bench/status.sh" "STATUS_WORKERS=$WORKERS STATUS_RUNS=$RUNS STATUS_IDLE_SECS=$IDLE_SECS" \
    "$CINIT_BIN" "none"
echo
echo "| measure ($WORKERS workers, $RUNS runs each, new connection each) | median | p95 | max | answer | target |"
echo "|---|---|---|---|---|---|"
while read -r name med p95 max bytes; do
    case $name in
        status_json) what="\`status\` (JSON)"; target="≤ 5 ms" ;;
        status_text) what="\`status\` (text)"; target="≤ 5 ms" ;;
        ready) what="\`ready\` (--probe ready)"; target="" ;;
        metrics) what="\`GET /metrics\`"; target="≤ 5 ms" ;;
    esac
    echo "| $what | $med ms | $p95 ms | $max ms | $bytes bytes | $target |"
done <"$WORK/times"
echo "| idle wake-ups in ${IDLE_SECS} s, sockets open (after the requests) | $IDLE_ON | | | | 0 |"
echo "| idle wake-ups in ${IDLE_SECS} s, \`--control none\`, no metrics | $IDLE_OFF | | | | 0 |"
