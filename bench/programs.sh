#!/usr/bin/env bash
# bench/programs.sh: several programs in one container, cinit's
# `--procfile` side by side with supervisord and honcho.
#
#   sudo bash bench/programs.sh > table.md      (as root; progress on stderr)
#
# The same three programs under each manager, each manager as PID 1 of its
# own pid namespace (`unshare --pid --fork --kill-child --mount-proc`):
# `web`, two `cinit-demo serve` processes sharing one TCP port, and
# `worker` and `clock`, one `cinit-demo sleep` each. cinit binds the port
# and hands it to its two workers (--listen, --workers 2); supervisord does
# the same with an [fcgi-program] (socket=tcp://..., numprocs=2, the socket
# on fd 0); honcho passes no socket, so each of its two web processes binds
# the port itself with SO_REUSEPORT (bench/programs/bindexec.rs, which then
# execs `cinit-demo serve --fd 3`). The details and the definitions of
# every row are in bench/programs/run.py. Measured per manager, median of
# PROGRAMS_ROUNDS rounds (the order rotating per round):
#   the manager side (the manager and any helper processes it keeps, not
#   the four programs): processes and threads, the manager's VmRSS and Pss
#   (/proc/PID/smaps_rollup), the Pss of the whole manager side; its idle
#   wake-ups (context switches over PROGRAMS_IDLE_SECS, as bench/pid1.sh
#   counts them); the time from the start to the first HTTP answer of web
#   and to the four programs running; the time from SIGTERM to the
#   programs gone and to the manager's exit, and its exit status.
# Prints a header (bench/header.sh) and one markdown table on stdout.
#
# Needs python3, unshare and file; the peers are supervisord (Debian
# `supervisor`) and honcho (PyPI `honcho`). A missing peer is named and its
# column left out, unless BENCH_INSTALL=1, which installs it (apt-get
# install supervisor; pip install honcho). Builds the shipped static
# binaries with `bash .ci/release` (target/x86_64-unknown-linux-musl/release/
# init and cinit-demo) and bindexec with plain rustc.
#
# Environment: CINIT_BIN / DEMO_BIN skip the build; CARGO_TARGET_DIR is
# honoured; PROGRAMS_ROUNDS (default 5), PROGRAMS_IDLE_SECS (default 5);
# BENCH_INSTALL=1 installs missing peers without asking.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=bench/header.sh
. "$ROOT/bench/header.sh"
ROUNDS=${PROGRAMS_ROUNDS:-5}
IDLE_SECS=${PROGRAMS_IDLE_SECS:-5}
GIVEN_BIN=${CINIT_BIN:-}

log() { printf '[programs %3ds] %s\n' "$SECONDS" "$*" >&2; }
die() { log "error: $*"; exit 1; }
[[ $(id -u) == 0 ]] || die "run as root (unshare --pid needs it)"
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || die "PROGRAMS_ROUNDS=$ROUNDS: expected a count"
[[ $IDLE_SECS =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "PROGRAMS_IDLE_SECS=$IDLE_SECS: expected seconds"

# ---------------------------------------------------------------- packages
need=()
command -v python3 >/dev/null 2>&1 || need+=(python3)
command -v file >/dev/null 2>&1 || need+=(file)
command -v unshare >/dev/null 2>&1 || need+=(util-linux)
((${#need[@]} == 0)) || bench_need_packages "${need[@]}"
# The interpreter itself, not a pyenv shim (a shim costs each start ~50 ms).
PY=$(python3 -c 'import sys; print(sys.executable)')

if ! command -v supervisord >/dev/null 2>&1 && [[ ${BENCH_INSTALL:-} == 1 ]]; then
    bench_need_packages supervisor
fi
if ! "$PY" -c 'import honcho' 2>/dev/null && [[ ${BENCH_INSTALL:-} == 1 ]]; then
    log "pip install honcho"
    "$PY" -m pip install -q honcho >&2 ||
        "$PY" -m pip install -q --break-system-packages honcho >&2 ||
        die "pip install honcho failed"
fi
MANAGERS=()
peers=""
if command -v supervisord >/dev/null 2>&1; then
    SUPERVISORD=$(command -v supervisord)
    v=$(dpkg-query -W -f='${Version}' supervisor 2>/dev/null) || v=$("$SUPERVISORD" --version 2>&1)
    peers+="${peers:+, }supervisor $v"
else
    log "supervisord not found: its column is left out (apt-get install supervisor, or BENCH_INSTALL=1)"
fi
if "$PY" -c 'import honcho' 2>/dev/null; then
    v=$("$PY" -c 'import honcho; print(honcho.__version__)')
    peers+="${peers:+, }honcho $v (python $("$PY" -c 'import platform; print(platform.python_version())'))"
else
    log "honcho not found for $PY: its column is left out (pip install honcho, or BENCH_INSTALL=1)"
fi

# ---------------------------------------------------------------- build
if [[ -d ${HOME:-/root}/.cargo/bin ]]; then PATH=${HOME:-/root}/.cargo/bin:$PATH; fi
if [[ -z ${CINIT_BIN:-} ]]; then
    command -v cargo >/dev/null || die "cargo not found (install Rust, or set CINIT_BIN and DEMO_BIN)"
    log "building the shipped binaries: bash .ci/release"
    (cd "$ROOT" && bash .ci/release >&2) || die "bash .ci/release failed"
    rel=${CARGO_TARGET_DIR:-$ROOT/target}/x86_64-unknown-linux-musl/release
    CINIT_BIN=$rel/init
    DEMO_BIN=${DEMO_BIN:-$rel/cinit-demo}
fi
DEMO_BIN=${DEMO_BIN:-$(dirname "$CINIT_BIN")/cinit-demo}
[[ -x $CINIT_BIN ]] || die "no binary at $CINIT_BIN"
[[ -x $DEMO_BIN ]] || die "no binary at $DEMO_BIN"
# A binary the linker has just written sits in dirty page-cache pages,
# which smaps would count as Private_Dirty: write them back first.
sync

WORK=$(mktemp -d /tmp/programs-bench.XXXXXX)
cleanup() { rm -rf "$WORK"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

command -v rustc >/dev/null || die "rustc not found (needed for bench/programs/bindexec.rs)"
rustc --edition 2021 -O -C panic=abort -o "$WORK/bindexec" "$ROOT/bench/programs/bindexec.rs" >&2 ||
    die "building bench/programs/bindexec.rs failed"

MANAGERS=("cinit=$CINIT_BIN")
[[ -n ${SUPERVISORD:-} ]] && MANAGERS+=("supervisord=$SUPERVISORD")
[[ $peers == *honcho* ]] && MANAGERS+=("honcho=$PY")

# ---------------------------------------------------------------- run
log "$ROUNDS rounds of: ${MANAGERS[*]%%=*} (web ×2, worker, clock; idle window ${IDLE_SECS} s)"
"$PY" "$ROOT/bench/programs/run.py" "$ROUNDS" "$IDLE_SECS" "$WORK" "$DEMO_BIN" "$WORK/bindexec" \
    "${MANAGERS[@]}" >"$WORK/table.md" || die "bench/programs/run.py failed"

bench_header "bash bench/programs.sh" "PROGRAMS_ROUNDS=$ROUNDS PROGRAMS_IDLE_SECS=$IDLE_SECS${GIVEN_BIN:+ CINIT_BIN=$GIVEN_BIN}" \
    "$CINIT_BIN" "${peers:-none}"
echo
cat "$WORK/table.md"
log "done"
