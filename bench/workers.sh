#!/bin/sh
# Worker managers side by side on the FastAPI example app (examples/fastapi),
# 2 workers each, bound to 127.0.0.1 only, measured one after the other:
#
#   1. cinit:    init --workers 2 --listen 127.0.0.1:PORT -- uvicorn app.main:app --fd 3
#   2. gunicorn: gunicorn -k uvicorn.workers.UvicornWorker -w 2 -b 127.0.0.1:PORT app.main:app
#   3. uvicorn:  uvicorn app.main:app --workers 2 --host 127.0.0.1 --port PORT
#
# (uvicorn runs with --no-access-log in 1 and 3; gunicorn's access log is off
# by default.) Measures requests/s and p99 under `wrk --latency`, process-tree
# RSS and PSS, the manager's own RSS/PSS, start to first answer, SIGKILLed
# worker to replacement, SIGTERM to exit, and the manager's idle wake-ups.
# bench/workers/run.py defines each measurement precisely.
#
# RELOAD=1 adds a second table (RELOAD=only: that table alone, about 6
# minutes): a rolling restart under load. Each server is started anew with
# 1 and with 2 workers whose app takes APP_STARTUP_DELAY=5 s in its lifespan
# startup; wrk runs a 20 s window twice, the second time with one SIGHUP to
# the manager 2 s in; failed requests, max and p99 latency of both windows,
# and how many of the old workers were gone by the end. The servers: cinit,
# gunicorn + UvicornWorker, `uvicorn --workers`, and `uvicorn --workers 2
# --timeout-worker-healthcheck 30` (uvicorn gives a restart up when the new
# worker is not ready within that timeout, 5 s by default).
#
# Prints a header (command, commit, date, machine, binary, peers' versions:
# bench/header.sh) and one markdown table on stdout (progress on stderr);
# about 2 minutes once built (RELOAD=1: 8). Kills every process it started, also on
# failure or Ctrl-C.
#
# Measures the shipped binary: `bash .ci/release` builds it (static, musl,
# target/x86_64-unknown-linux-musl/release/init). Needs python3 with pip
# and cargo. What is missing is installed only when asked (a prompt on a
# terminal, or BENCH_INSTALL=1; else it stops and names it): wrk with
# apt-get (root), examples/fastapi/requirements.txt with pip (no psutil:
# /proc is read directly). Usage, from the repository root:
#     bench/workers.sh > table.md
# Environment: CARGO_TARGET_DIR (default target), WRK_ARGS ("-t2 -c50 -d5s"),
# WRK_RUNS (3), WARMUP (3s), IDLE_S (10), BENCH_INSTALL (1: install without
# asking); for the reload table: RELOAD (0; 1; only), RELOAD_WRK ("-t2 -c50"),
# RELOAD_S (20: the window, s), RELOAD_RUNS (1: rounds of baseline + HUP
# per server; medians with more), RELOAD_HUP_AT (2: s into the window),
# RELOAD_STARTUP (5: APP_STARTUP_DELAY, s), RELOAD_SERVERS (all of
# "cinit,gunicorn,uvicorn,uvicorn-hc30"; a subset for a quicker look);
# KEEP_LOGS=1 keeps the servers' logs and wrk's reports (the directory is
# named on stderr at the end).
set -eu

say() { echo "workers-bench: $*" >&2; }
die() { say "$*"; exit 1; }

case ${RELOAD:-0} in 0 | 1 | only) ;; *) die "RELOAD=$RELOAD: expected 0, 1 or only" ;; esac

cd "$(dirname "$0")/.."
. bench/header.sh
APP=examples/fastapi
[ -f "$APP/app/main.py" ] || die "$APP/app/main.py missing (run it from a checkout of the repository)"

command -v python3 >/dev/null || die "needs python3"
if ! python3 -c 'import fastapi, uvicorn, gunicorn' 2>/dev/null; then
    say "fastapi, uvicorn or gunicorn is missing ($APP/requirements.txt)"
    if [ "${BENCH_INSTALL:-}" != 1 ]; then
        [ -t 0 ] || die "run again with BENCH_INSTALL=1 to pip install $APP/requirements.txt, or install it yourself"
        printf 'workers-bench: pip install -r %s now? [y/N] ' "$APP/requirements.txt" >&2
        read -r answer || answer=
        case $answer in y | Y | yes) ;; *) die "not installed; stopping" ;; esac
    fi
    python3 -m pip install -q -r "$APP/requirements.txt" >&2 ||
        python3 -m pip install -q --break-system-packages -r "$APP/requirements.txt" >&2 ||
        die "pip install failed"
fi
command -v wrk >/dev/null || bench_need_packages wrk

TARGET=${CARGO_TARGET_DIR:-target}
say "building the shipped binary: bash .ci/release"
bash .ci/release >&2 || die "bash .ci/release failed"
INIT=$(cd "$TARGET/x86_64-unknown-linux-musl/release" && pwd)/init

# The interpreter's own bin directory: uvicorn and gunicorn run from there,
# not through wrappers such as pyenv shims (a shell in front of every start).
PYBIN=$(python3 -c 'import os, sys; print(os.path.dirname(os.path.realpath(sys.executable)))')
for b in uvicorn gunicorn; do
    [ -x "$PYBIN/$b" ] || die "$PYBIN/$b missing"
done

STATE=$(mktemp -d /tmp/workers-bench.XXXXXX)
RUN_PID=
cleanup() {
    trap - EXIT INT TERM
    set +e
    if [ -n "$RUN_PID" ]; then
        kill "$RUN_PID" 2>/dev/null
        wait "$RUN_PID" 2>/dev/null
    fi
    # Every process of every session run.py started (the servers).
    if [ -s "$STATE/sids" ]; then
        for sid in $(cat "$STATE/sids"); do
            for pid in $(ps -e -o pid= -o sid= | awk -v s="$sid" '$2 == s { print $1 }'); do
                kill -KILL "$pid" 2>/dev/null || true
            done
        done
    fi
    if [ "${KEEP_LOGS:-}" = 1 ]; then
        say "logs kept in $STATE"
    else
        rm -rf "$STATE"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Warm the page cache so that the first server does not pay for it alone.
(cd "$APP" && python3 -W ignore -c 'import app.main, uvicorn.main, uvicorn.workers, gunicorn.app.wsgiapp') ||
    die "cannot import the app"

say "nproc $(nproc); load$(uptime | sed 's/.*load average//')"
PEERS=$(python3 -c 'import platform
from importlib.metadata import version
print(", ".join(["Python " + platform.python_version()] + [p + " " + version(p) for p in ("fastapi", "uvicorn", "gunicorn")]))')
SETTINGS="WRK_ARGS=\"${WRK_ARGS:--t2 -c50 -d5s}\" WRK_RUNS=${WRK_RUNS:-3} WARMUP=${WARMUP:-3s} IDLE_S=${IDLE_S:-10}"
RELOAD_SETTINGS="RELOAD=${RELOAD:-0} RELOAD_WRK=\"${RELOAD_WRK:--t2 -c50}\" RELOAD_S=${RELOAD_S:-20} RELOAD_RUNS=${RELOAD_RUNS:-1} RELOAD_HUP_AT=${RELOAD_HUP_AT:-2} RELOAD_STARTUP=${RELOAD_STARTUP:-5}${RELOAD_SERVERS:+ RELOAD_SERVERS=$RELOAD_SERVERS}"
case ${RELOAD:-0} in
    0) ;;
    1) SETTINGS="$SETTINGS $RELOAD_SETTINGS" ;;
    only) SETTINGS=$RELOAD_SETTINGS ;;
esac
bench_header "bash bench/workers.sh" "$SETTINGS" \
    "$INIT" "$PEERS, $(wrk -v 2>&1 | head -n 1 | cut -d' ' -f1-2)"
echo
python3 bench/workers/run.py "$INIT" "$PYBIN" "$APP" "$STATE" &
RUN_PID=$!
wait "$RUN_PID" || die "run.py failed; logs were in $STATE"
RUN_PID=
say "load$(uptime | sed 's/.*load average//')"
