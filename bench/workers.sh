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
# Prints one markdown table on stdout (progress on stderr); about 2 minutes
# once built. Kills every process it started, also on failure or Ctrl-C.
#
# Needs python3 with pip, cargo, and root only to apt-get install wrk when
# it is missing. Installs examples/fastapi/requirements.txt with pip (no
# psutil: /proc is read directly). Usage, from the repository root:
#     bench/workers.sh > table.md
# Environment: CARGO_TARGET_DIR (default target), WRK_ARGS ("-t2 -c50 -d5s"),
# WRK_RUNS (3), WARMUP (3s), IDLE_S (10).
set -eu

say() { echo "workers-bench: $*" >&2; }
die() { say "$*"; exit 1; }

cd "$(dirname "$0")/.."
APP=examples/fastapi
[ -f "$APP/app/main.py" ] || die "$APP/app/main.py missing (merge branch demo)"

command -v python3 >/dev/null || die "needs python3"
say "installing $APP/requirements.txt"
python3 -m pip install -q -r "$APP/requirements.txt" >&2 ||
    die "pip install failed"
if ! command -v wrk >/dev/null; then
    say "installing wrk"
    apt-get install -y wrk >&2 || die "cannot install wrk (apt-get install -y wrk)"
fi

TARGET=${CARGO_TARGET_DIR:-target}
say "cargo build --release --bins"
cargo build --quiet --release --bins >&2 || die "cargo build failed"
INIT=$(cd "$TARGET/release" && pwd)/init

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
    rm -rf "$STATE"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Warm the page cache so that the first server does not pay for it alone.
(cd "$APP" && python3 -W ignore -c 'import app.main, uvicorn.main, uvicorn.workers, gunicorn.app.wsgiapp') ||
    die "cannot import the app"

say "nproc $(nproc); load$(uptime | sed 's/.*load average//')"
python3 bench/workers/run.py "$INIT" "$PYBIN" "$APP" "$STATE" &
RUN_PID=$!
wait "$RUN_PID" || die "run.py failed; logs were in $STATE"
RUN_PID=
say "load$(uptime | sed 's/.*load average//')"
