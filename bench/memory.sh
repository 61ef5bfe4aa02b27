#!/bin/sh
# The memory guard against the alternatives, side by side in one run on the
# same leaking app (examples/fastapi with APP_LEAK=1), the same memory limit
# (256 MiB, no swap, each server in a v1 memory cgroup of its own) and the
# same load, 2 workers each, bound to 127.0.0.1, one after the other:
#
#   1. cinit + guard: init --workers 2 --listen 127.0.0.1:PORT --max-worker-memory 70MiB
#                       -- uvicorn app.main:app --fd 3 --no-access-log
#   2. gunicorn:      gunicorn -k uvicorn.workers.UvicornWorker -w 2 -b 127.0.0.1:PORT
#                       --max-requests 1000 --max-requests-jitter 100 app.main:app
#   3. neither:       as 1 without --max-worker-memory
#
# The load (bench/memory/load.py) sends requests at a fixed rate, each on
# a new connection, some of them GET /leak?mib=1, in two mixes that leak
# the same 5 MiB/s: A in small steps (1 request in 10 of 50/s), B in large
# ones (1 in 4 of 20/s). Reports OOM kills (the cgroup's oom_kill), failed
# requests, p99 latency, peak memory (the cgroup's max_usage_in_bytes and
# its working set) and the workers replaced on purpose.
# bench/memory/run.py defines each measurement and says why these
# settings; load.py why it is not wrk.
#
# Prints a header (command, commit, date, machine, binary, peers' versions:
# bench/header.sh) and one markdown table on stdout (progress on stderr);
# about 7 minutes once built. Kills every process it started and removes
# the cgroups it made, also on failure or Ctrl-C.
#
# Measures the shipped binary: `bash .ci/release` builds it (static, musl,
# target/x86_64-unknown-linux-musl/release/init). Needs root and a cgroup
# v1 memory hierarchy (/sys/fs/cgroup/memory), python3 with pip, and cargo.
# What is missing is installed only when asked (a prompt on a terminal, or
# BENCH_INSTALL=1; else it stops and names it):
# examples/fastapi/requirements.txt with pip. Usage, from the repository
# root:
#     bench/memory.sh > table.md
# Environment: CARGO_TARGET_DIR (default target), DURATION (seconds of load
# per server and mix, 60), LIMIT_MIB (256), MIXES ("10:50 4:20":
# LEAK_EVERY:REQUESTS_PER_SECOND pairs), MAX_WORKER_MEMORY (70MiB),
# MAX_REQUESTS (1000), MAX_REQUESTS_JITTER (100), BENCH_INSTALL (1: install
# without asking).
set -eu

say() { echo "memory-bench: $*" >&2; }
die() { say "$*"; exit 1; }

cd "$(dirname "$0")/.."
. bench/header.sh
APP=examples/fastapi
[ -f "$APP/app/main.py" ] || die "$APP/app/main.py missing (run it from a checkout of the repository)"
[ "$(id -u)" = 0 ] || die "needs root (it makes memory cgroups)"
[ -w /sys/fs/cgroup/memory ] || die "needs a writable cgroup v1 memory hierarchy at /sys/fs/cgroup/memory"

command -v python3 >/dev/null || die "needs python3"
if ! python3 -c 'import fastapi, uvicorn, gunicorn' 2>/dev/null; then
    say "fastapi, uvicorn or gunicorn is missing ($APP/requirements.txt)"
    if [ "${BENCH_INSTALL:-}" != 1 ]; then
        [ -t 0 ] || die "run again with BENCH_INSTALL=1 to pip install $APP/requirements.txt, or install it yourself"
        printf 'memory-bench: pip install -r %s now? [y/N] ' "$APP/requirements.txt" >&2
        read -r answer || answer=
        case $answer in y | Y | yes) ;; *) die "not installed; stopping" ;; esac
    fi
    python3 -m pip install -q -r "$APP/requirements.txt" >&2 ||
        python3 -m pip install -q --break-system-packages -r "$APP/requirements.txt" >&2 ||
        die "pip install failed"
fi

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

STATE=$(mktemp -d /tmp/memory-bench.XXXXXX)
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
    # The cgroups it made: what is left in one goes back to ours first.
    if [ -s "$STATE/cgroups" ]; then
        home=/sys/fs/cgroup/memory$(sed -n 's/^[0-9]*:\([^:]*,\)\{0,1\}memory\(,[^:]*\)\{0,1\}://p' /proc/self/cgroup)
        for dir in $(cat "$STATE/cgroups"); do
            [ -d "$dir" ] || continue
            for pid in $(cat "$dir/cgroup.procs" 2>/dev/null); do
                echo "$pid" >"$home/cgroup.procs" 2>/dev/null || true
            done
            rmdir "$dir" 2>/dev/null || sleep 1
            [ ! -d "$dir" ] || rmdir "$dir" 2>/dev/null || say "could not remove $dir"
        done
    fi
    rm -rf "$STATE"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Warm the page cache so that the first server does not pay for it alone
# (nor has it charged to its cgroup).
(cd "$APP" && python3 -W ignore -c 'import app.main, uvicorn.main, uvicorn.workers, gunicorn.app.wsgiapp') ||
    die "cannot import the app"

say "nproc $(nproc); load$(uptime | sed 's/.*load average//')"
PEERS=$(python3 -c 'import platform
from importlib.metadata import version
print(", ".join(["Python " + platform.python_version()] + [p + " " + version(p) for p in ("fastapi", "uvicorn", "gunicorn")]))')
bench_header "bash bench/memory.sh" "DURATION=${DURATION:-60} LIMIT_MIB=${LIMIT_MIB:-256} MIXES=\"${MIXES:-10:50 4:20}\" MAX_WORKER_MEMORY=${MAX_WORKER_MEMORY:-70MiB} MAX_REQUESTS=${MAX_REQUESTS:-1000} MAX_REQUESTS_JITTER=${MAX_REQUESTS_JITTER:-100}" \
    "$INIT" "$PEERS, cgroup v1"
echo
python3 bench/memory/run.py "$INIT" "$PYBIN" "$APP" "$STATE" &
RUN_PID=$!
if ! wait "$RUN_PID"; then
    for f in "$STATE"/*.log; do
        [ -f "$f" ] || continue
        say "--- the end of $(basename "$f")"
        tail -n 20 "$f" >&2
    done
    die "run.py failed"
fi
RUN_PID=
say "load$(uptime | sed 's/.*load average//')"
