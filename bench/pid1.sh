#!/usr/bin/env bash
# bench/pid1.sh: cinit's `init` side by side with tini, dumb-init and catatonit.
#
#   sudo bench/pid1.sh > table.md      (as root; progress goes to stderr)
#
# Needs the peers from Debian (tini, dumb-init, catatonit, hyperfine, file):
# when one is missing it asks before installing (apt-get), or installs with
# BENCH_INSTALL=1, else stops. Builds the shipped static binary with
# `bash .ci/release` (musl, target/x86_64-unknown-linux-musl/release/init)
# and measures, in one run:
#   size and linkage; the init's own memory (as PID 1, child sleeping); idle
#   wake-ups over 10 s (as PID 1); per-start overhead (`X -- /bin/true`, and
#   as PID 1 under `unshare -fp`); a storm of 10,000 orphans (as PID 1); the
#   time from SIGTERM to the child's handler (not PID 1).
# Prints a header (command, commit, date, machine, binary, peers' versions:
# bench/header.sh) and one markdown table on stdout. Needs root (unshare
# --pid).
#
# Environment: CINIT_BIN=path skips the build; CARGO_TARGET_DIR is honoured;
# BENCH_INSTALL=1 installs missing packages without asking;
# PID1_RUNS (start runs per command, default 300), PID1_STORM_RUNS (default 5),
# PID1_TERM_RUNS (default 40), PID1_ORPHANS (default 10000), PID1_IDLE_SECS
# (default 10).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=bench/header.sh
. "$ROOT/bench/header.sh"
HELPER=$ROOT/bench/pid1/helper.py
RUNS=${PID1_RUNS:-300}
STORM_RUNS=${PID1_STORM_RUNS:-5}
TERM_RUNS=${PID1_TERM_RUNS:-40}
ORPHANS=${PID1_ORPHANS:-10000}
IDLE_SECS=${PID1_IDLE_SECS:-10}

log() { printf '[pid1 %3ds] %s\n' "$SECONDS" "$*" >&2; }
die() { log "error: $*"; exit 1; }

[[ $(id -u) == 0 ]] || die "run as root (unshare --pid needs it)"

# ---------------------------------------------------------------- packages
need=()
for b in tini tini-static dumb-init catatonit hyperfine file unshare; do
    command -v "$b" >/dev/null 2>&1 && continue
    case $b in
        tini-static) need+=(tini) ;;
        unshare) need+=(util-linux) ;;
        *) need+=("$b") ;;
    esac
done
[[ -x /usr/bin/python3 ]] || command -v python3 >/dev/null 2>&1 || need+=(python3)
if ((${#need[@]})); then
    mapfile -t need < <(printf '%s\n' "${need[@]}" | sort -u)
    bench_need_packages "${need[@]}"
fi
PY=/usr/bin/python3
[[ -x $PY ]] || PY=$(command -v python3)

WORK=$(mktemp -d /tmp/pid1-bench.XXXXXX)
STARTED=()   # pids of unshare processes we started (direct children of this shell)
cleanup() {
    local p c
    for p in "${STARTED[@]}"; do
        [[ -d /proc/$p ]] || continue
        for c in $(cat /proc/"$p"/task/*/children 2>/dev/null); do kill -KILL "$c" 2>/dev/null || true; done
        kill -KILL "$p" 2>/dev/null || true
    done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- build
if [[ -d ${HOME:-/root}/.cargo/bin ]]; then PATH=${HOME:-/root}/.cargo/bin:$PATH; fi
if [[ -n ${CINIT_BIN:-} ]]; then
    CINIT=$CINIT_BIN
else
    command -v cargo >/dev/null || die "cargo not found (install Rust, or set CINIT_BIN)"
    TD=${CARGO_TARGET_DIR:-$ROOT/target}
    log "building the shipped binary: bash .ci/release"
    (cd "$ROOT" && bash .ci/release >&2) || die "bash .ci/release failed"
    CINIT=$TD/x86_64-unknown-linux-musl/release/init
fi
[[ -x $CINIT ]] || die "no binary at $CINIT"
# A binary the linker has just written sits in dirty page-cache pages, which
# smaps counts as the init's Private_Dirty: write them back first.
sync
command -v rustc >/dev/null || die "rustc not found (needed for bench/pid1/storm.rs)"
STORM_BIN=$WORK/storm
rustc --edition 2021 -O -C panic=abort -C strip=debuginfo -o "$STORM_BIN" "$ROOT/bench/pid1/storm.rs" >&2 ||
    die "building bench/pid1/storm.rs failed"

NAMES=(cinit tini-static tini dumb-init catatonit)
declare -A BIN=(
    [cinit]=$CINIT
    [tini-static]=$(command -v tini-static)
    [tini]=$(command -v tini)
    [dumb-init]=$(command -v dumb-init)
    [catatonit]=$(command -v catatonit)
)

# ---------------------------------------------------------------- helpers
now_us() { echo "${EPOCHREALTIME/./}"; }

# wait_for SECONDS CMD...: poll CMD every 10 ms until it succeeds, or fail.
wait_for() {
    local deadline=$(($(now_us) + $1 * 1000000)); shift
    until "$@"; do
        (($(now_us) < deadline)) || return 1
        sleep 0.01
    done
}

children() { cat /proc/"$1"/task/*/children 2>/dev/null || true; }
has_children() { [[ -n $(children "$1") ]]; }
# has_child_named PID COMM: PID has a child (past exec) whose comm is COMM
has_child_named() {
    local c
    for c in $(children "$1"); do
        [[ $(cat /proc/"$c"/comm 2>/dev/null) == "$2" ]] && return 0
    done
    return 1
}
# state PID: the one-letter state from /proc/PID/stat
state() { local s; s=$(cat /proc/"$1"/stat 2>/dev/null) || return 1; s=${s##*) }; echo "${s%% *}"; }
is_sleeping() { [[ $(state "$1") == S ]]; }
is_gone() { local s; s=$(state "$1") || return 0; [[ $s == Z ]]; }
ctxt() { cat /proc/"$1"/task/*/status | awk '/ctxt_switches/{s+=$2} END{print s}'; }
status_kb() { awk -v k="$2:" '$1==k{print $2}' /proc/"$1"/status; }
rollup_kb() { awk -v k="$2:" '$1==k{print $2}' /proc/"$1"/smaps_rollup; }
commas() { echo "$1" | sed ':a;s/\B[0-9]\{3\}\>/,&/;ta'; }

# ---------------------------------------------------------------- 1. size
log "sizes"
declare -A SIZE LINK
for n in "${NAMES[@]}"; do
    SIZE[$n]=$(stat -c %s "${BIN[$n]}")
    f=$(file -b "${BIN[$n]}")
    case $f in
        *static-pie*) l="static-pie" ;;
        *"statically linked"*) l="static" ;;
        *"dynamically linked"*) l="dynamic"; [[ $f == *"pie executable"* ]] && l="dynamic PIE" ;;
        *) l="?" ;;
    esac
    [[ $f == *", stripped"* ]] && l+=", stripped" || l+=", not stripped"
    LINK[$n]=$l
done

# ---------------------------------------------------------------- 2+3. memory, idle wake-ups (as PID 1)
log "memory and idle wake-ups: all five as PID 1 with \`sleep\`, ${IDLE_SECS} s"
declare -A UPID IPID RSS HWM PSS PDIRTY THREADS CTX0 CTX1 HWM_END RFILE RANON
for n in "${NAMES[@]}"; do
    unshare --pid --fork --mount-proc "${BIN[$n]}" -- sleep $((IDLE_SECS + 20)) \
        </dev/null >/dev/null 2>>"$WORK/idle.err" &
    UPID[$n]=$!
    STARTED+=($!)
done
for n in "${NAMES[@]}"; do
    u=${UPID[$n]}
    wait_for 5 has_children "$u" || die "$n: unshare did not start the init"
    IPID[$n]=$(children "$u" | awk '{print $1}')
done
for n in "${NAMES[@]}"; do
    i=${IPID[$n]}
    wait_for 5 has_child_named "$i" sleep || die "$n: child \`sleep\` did not start"
    wait_for 5 is_sleeping "$i" || die "$n: init never went to sleep"
    RSS[$n]=$(status_kb "$i" VmRSS); HWM[$n]=$(status_kb "$i" VmHWM)
    PSS[$n]=$(rollup_kb "$i" Pss); PDIRTY[$n]=$(rollup_kb "$i" Private_Dirty)
    THREADS[$n]=$(status_kb "$i" Threads)
    RFILE[$n]=$(status_kb "$i" RssFile); RANON[$n]=$(status_kb "$i" RssAnon)
done
sleep 1   # settle: ignore whatever the init does right after its child's exec
for n in "${NAMES[@]}"; do CTX0[$n]=$(ctxt "${IPID[$n]}"); done
sleep "$IDLE_SECS"
for n in "${NAMES[@]}"; do
    CTX1[$n]=$(ctxt "${IPID[$n]}")
    HWM_END[$n]=$(status_kb "${IPID[$n]}" VmHWM)
done
for n in "${NAMES[@]}"; do kill -TERM "${IPID[$n]}" 2>/dev/null || true; done
for n in "${NAMES[@]}"; do
    wait_for 5 is_gone "${UPID[$n]}" || { log "$n ignored SIGTERM as PID 1; killing"; kill -KILL "${IPID[$n]}" 2>/dev/null || true; }
    wait "${UPID[$n]}" 2>/dev/null || true
done

# ---------------------------------------------------------------- 4. start overhead
# Three interleaved rounds of hyperfine, RUNS runs per command in total; the
# median of all runs is compared with the baseline's.
hf_median() { # hf_median TAG CMD...: run rounds, print median ms of each command in order
    local tag=$1; shift
    local per=$(((RUNS + 2) / 3)) r
    for r in 1 2 3; do
        hyperfine -N --style none --warmup 10 --runs "$per" \
            --export-json "$WORK/$tag.$r.json" "$@" >/dev/null 2>>"$WORK/hyperfine.err" ||
            die "hyperfine failed (see below)"$'\n'"$(tail -5 "$WORK/hyperfine.err")"
    done
    "$PY" - "$WORK/$tag".{1,2,3}.json <<'EOF'
import json, statistics, sys
runs = [json.load(open(f))["results"] for f in sys.argv[1:]]
for i in range(len(runs[0])):
    t = [x for r in runs for x in r[i]["times"]]
    print(f"{statistics.median(t) * 1000:.3f}")
EOF
}
log "start overhead: $RUNS × \`X -- /bin/true\` vs \`/bin/true\`"
cmds=("/bin/true")
for n in "${NAMES[@]}"; do cmds+=("${BIN[$n]} -- /bin/true"); done
hf_median plain "${cmds[@]}" >"$WORK/plain.txt"
mapfile -t M <"$WORK/plain.txt"
declare -A START START1
BASE=${M[0]}
for k in "${!NAMES[@]}"; do START[${NAMES[$k]}]=${M[$((k + 1))]}; done

log "start overhead as PID 1: $RUNS × \`unshare -fp X -- /bin/true\` vs \`unshare -fp /bin/true\`"
cmds=("unshare -fp /bin/true")
for n in "${NAMES[@]}"; do cmds+=("unshare -fp ${BIN[$n]} -- /bin/true"); done
hf_median pid1 "${cmds[@]}" >"$WORK/pid1.txt"
mapfile -t M <"$WORK/pid1.txt"
BASE1=${M[0]}
for k in "${!NAMES[@]}"; do START1[${NAMES[$k]}]=${M[$((k + 1))]}; done

# ---------------------------------------------------------------- 5. orphan storm (as PID 1)
# helper.py runs the rounds interleaved: none, cinit, tini-static, ... per round.
INITS=(none); for n in "${NAMES[@]}"; do INITS+=("${BIN[$n]}"); done
declare -A STORM TAIL NSLEFT REAP LEFT TERM_MED TERM_MIN
# helper_rows VAR... < output: line k (k = 0 for `none`) fills VAR[k-th name]
helper_rows() {
    local k=0 line names=(none "${NAMES[@]}") v vals
    while read -r line; do
        read -ra vals <<<"$line"
        for v in "$@"; do printf -v "$v[${names[$k]}]" %s "${vals[0]}"; vals=("${vals[@]:1}"); done
        k=$((k + 1))
    done
    ((k == ${#names[@]})) || die "helper printed $k lines, not ${#names[@]}"
}
log "orphan storm as PID 1: the child forks $ORPHANS children that exit at once, then exits ($STORM_RUNS rounds)"
"$PY" "$HELPER" storm "$STORM_RUNS" "$ORPHANS" "$STORM_BIN" "${INITS[@]}" >"$WORK/storm.txt"
helper_rows STORM TAIL NSLEFT <"$WORK/storm.txt"
log "$ORPHANS orphans handed to PID 1 while the child lives, until its /proc shows none ($STORM_RUNS rounds)"
"$PY" "$HELPER" reap "$STORM_RUNS" "$ORPHANS" 20 "$STORM_BIN" "${INITS[@]:1}" >"$WORK/reap.txt"
{ echo "– –"; cat "$WORK/reap.txt"; } >"$WORK/reap2.txt"
helper_rows REAP LEFT <"$WORK/reap2.txt"
# without an init nothing reaps: show it once, with a short deadline
out=$(unshare -fp --mount-proc "$STORM_BIN" reap "$ORPHANS" 0.5)
read -r _ LEFT[none] <<<"$out"

# ---------------------------------------------------------------- 6. SIGTERM latency (not PID 1)
log "SIGTERM → child's handler, init not PID 1 ($TERM_RUNS rounds)"
"$PY" "$HELPER" termlat "$TERM_RUNS" "${INITS[@]}" >"$WORK/term.txt"
helper_rows TERM_MED TERM_MIN <"$WORK/term.txt"

# ---------------------------------------------------------------- table
row() { printf '| %s ' "$@"; echo '|'; }
# line LABEL NONE FORMAT: FORMAT is evaluated with $n set to each init's name
line() {
    local label=$1 none=$2 fmt=$3 r n
    r=("$label" "$none")
    for n in "${NAMES[@]}"; do r+=("$(eval "echo \"$fmt\"")"); done
    row "${r[@]}"
}
per_s() { awk -v d="$1" -v s="$IDLE_SECS" 'BEGIN{printf "%.1f", d/s}'; }
diff_ms() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%+.3f", a-b}'; }
{
    settings="PID1_RUNS=$RUNS PID1_STORM_RUNS=$STORM_RUNS PID1_TERM_RUNS=$TERM_RUNS PID1_ORPHANS=$ORPHANS PID1_IDLE_SECS=$IDLE_SECS${CINIT_BIN:+ CINIT_BIN=$CINIT_BIN}"
    peers=""
    for p in tini dumb-init catatonit hyperfine; do
        v=$(dpkg-query -W -f='${Version}' "$p" 2>/dev/null) || v=$("$p" --version 2>&1 | head -n 1)
        peers+="${peers:+, }$p $v"
    done
    bench_header "bash bench/pid1.sh" "$settings" "$CINIT" "$peers (tini-static: Debian's tini package)"
    echo
    row "" "(no init)" "**cinit**" "tini-static" "tini" "dumb-init" "catatonit"
    row --- --- --- --- --- --- ---
    line "Binary, bytes" – '$(commas ${SIZE[$n]})'
    line "Linkage (\`file\`)" – '${LINK[$n]}'
    line "Own VmRSS / VmHWM, kB (PID 1, child sleeping)" – '${RSS[$n]} / ${HWM[$n]}'
    line "… of which RssFile / RssAnon, kB" – '${RFILE[$n]} / ${RANON[$n]}'
    line "Own Pss / Private_Dirty, kB" – '${PSS[$n]} / ${PDIRTY[$n]}'
    line "VmHWM after ${IDLE_SECS} s idle, kB; threads" – '${HWM_END[$n]}; ${THREADS[$n]}'
    line "Idle wake-ups /s (ctxt switches in ${IDLE_SECS} s, PID 1)" – '$(per_s $((CTX1[$n] - CTX0[$n]))) ($((CTX1[$n] - CTX0[$n])))'
    line "\`X -- /bin/true\`, median ms ($RUNS runs)" "$BASE" '${START[$n]}'
    line "… overhead per start, ms" – '$(diff_ms ${START[$n]} $BASE)'
    line "\`unshare -fp X -- /bin/true\`, median ms ($RUNS runs)" "$BASE1" '${START1[$n]}'
    line "… overhead per start as PID 1, ms" – '$(diff_ms ${START1[$n]} $BASE1)'
    line "Storm: the child forks $(commas $ORPHANS) children that exit at once, and exits (PID 1): wall ms, median of $STORM_RUNS" "${STORM[none]}" '${STORM[$n]}'
    line "… from the child's exit to the command's end, ms" "${TAIL[none]}" '${TAIL[$n]}'
    line "… processes of that pid namespace left afterwards" "${NSLEFT[none]}" '${NSLEFT[$n]}'
    line "$(commas $ORPHANS) orphans handed to PID 1 while the child lives: ms until all reaped, median of $STORM_RUNS; left" "never; ${LEFT[none]}" '${REAP[$n]}; ${LEFT[$n]}'
    line "SIGTERM → child's handler (not PID 1), µs: median (min) of $TERM_RUNS" "${TERM_MED[none]} (${TERM_MIN[none]})" '${TERM_MED[$n]} (${TERM_MIN[$n]})'
    line "… added to direct delivery (medians), µs" – '$((TERM_MED[$n] - TERM_MED[none]))'
}
log "done"
