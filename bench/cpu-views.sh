#!/bin/sh
# What each tool thinks "the number of CPUs" is, inside real cgroup v1
# groups of this machine: nproc, Python os.cpu_count() and
# len(os.sched_getaffinity(0)), Rust std::thread::available_parallelism(),
# num_cpus::get(), and cinit (`init --dry-run --json --workers auto`).
# Prints a header (command, commit, date, machine, binary, the tools'
# versions: bench/header.sh) and a markdown table (the one in
# docs/sizing.md), and removes every group it created, also on failure or
# Ctrl-C. Installs nothing.
#
# Needs root and cgroup v1 cpu, cpuset and memory hierarchies (hybrid or v1
# hosts), python3 and rustc. Usage, from the repository root:
#     sudo bench/cpu-views.sh            # builds target/debug/init if needed
#     INIT=/path/to/init bench/cpu-views.sh
set -eu
. "$(dirname "$0")/header.sh"

die() { echo "cpu-views: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "needs root (it creates cgroups)"
command -v python3 >/dev/null || die "needs python3"
command -v rustc >/dev/null || die "needs rustc"

TARGET=${CARGO_TARGET_DIR:-target}
INIT_GIVEN=${INIT:-}
INIT=${INIT:-$TARGET/debug/init}
if [ ! -x "$INIT" ]; then
    cargo build --quiet --bin init || die "cannot build init"
fi
DEPS=$TARGET/debug/deps
# num_cpus as built for this crate; without it that column reads "-".
NUM_CPUS_RLIB=$(ls "$DEPS"/libnum_cpus-*.rlib 2>/dev/null | head -n 1) ||
    true

# This process's directory in a v1 hierarchy mounted at /sys/fs/cgroup/<c>.
own() {
    p=$(awk -F: -v c="$1" '{ n = split($2, a, ","); for (i = 1; i <= n; i++) if (a[i] == c) print $3 }' /proc/self/cgroup)
    [ -n "$p" ] || die "no v1 $1 hierarchy in /proc/self/cgroup"
    d=/sys/fs/cgroup/$1${p%/}
    [ -d "$d" ] || die "$d does not exist (unusual mount layout)"
    echo "$d"
}
CPU_HOME=$(own cpu)
SET_HOME=$(own cpuset)
MEM_HOME=$(own memory)

WORK=$(mktemp -d)
TAG=cinit-bench-$$
CREATED=""
cleanup() {
    # Children were created after their parents: remove in reverse order,
    # moving any process still inside back home first.
    for d in $CREATED; do
        case $d in
            /sys/fs/cgroup/cpu/*) home=$CPU_HOME ;;
            /sys/fs/cgroup/cpuset/*) home=$SET_HOME ;;
            *) home=$MEM_HOME ;;
        esac
        if [ -d "$d" ]; then
            for pid in $(cat "$d/cgroup.procs" 2>/dev/null); do
                echo "$pid" >"$home/cgroup.procs" 2>/dev/null || true
            done
            rmdir "$d" 2>/dev/null || echo "cpu-views: could not remove $d" >&2
        fi
    done
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# mkgroup PARENT NAME: creates PARENT/<tag>-NAME, sets G to it and
# remembers it for cleanup, newest first. Not called as $(mkgroup ...):
# a command substitution is a subshell and would lose CREATED.
mkgroup() {
    G=$1/$TAG-$2
    mkdir "$G"
    CREATED="$G $CREATED"
}

# The Rust views, compiled once (against the num_cpus cinit was built with).
if [ -n "$NUM_CPUS_RLIB" ]; then
    NUM='num_cpus::get().to_string()'
    set -- -L "dependency=$DEPS" --extern "num_cpus=$NUM_CPUS_RLIB"
else
    NUM='String::from("-")'
    set --
fi
cat >"$WORK/views.rs" <<EOF
fn main() {
    let std = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    println!("{} {}", std, $NUM);
}
EOF
rustc --edition 2021 -O -o "$WORK/views" "$WORK/views.rs" "$@" 2>"$WORK/rustc.log" ||
    die "rustc failed: $(cat "$WORK/rustc.log")"

# inside CPU_DIR CPUSET_DIR MEM_DIR CMD...: run CMD with its own pid in the
# three groups ("-" leaves a hierarchy alone).
inside() {
    sh -c 'for d in "$1" "$2" "$3"; do [ "$d" = - ] || echo $$ >"$d/cgroup.procs"; done; shift 3; exec "$@"' \
        inside "$@"
}

row() { # label cpu cpuset mem [taskset-cpu]
    label=$1; c=$2; s=$3; m=$4; pin=${5:-}
    pre=""
    [ -z "$pin" ] || pre="taskset -c $pin"
    np=$(inside "$c" "$s" "$m" $pre nproc)
    py=$(inside "$c" "$s" "$m" $pre python3 -c 'import os; print(os.cpu_count(), len(os.sched_getaffinity(0)))')
    rs=$(inside "$c" "$s" "$m" $pre "$WORK/views")
    ci=$(inside "$c" "$s" "$m" $pre "$INIT" --dry-run --json --workers auto -- true |
        python3 -c 'import json, sys; d = json.load(sys.stdin); print("%g %d" % (d["resources"]["cpus"]["value"], d["workers"]["count"]))')
    set -- $py $rs $ci
    echo "| $label | $np | $1 | $2 | $3 | $4 | $5 | $6 |"
}

NUM_CPUS_VERSION=$(awk '$0 == "name = \"num_cpus\"" { getline; gsub(/[^0-9.]/, ""); print }' Cargo.lock 2>/dev/null)
bench_header "sh bench/cpu-views.sh" "${INIT_GIVEN:+INIT=$INIT}" "$INIT" \
    "$(nproc --version | head -n 1), $(python3 --version), $(rustc --version | cut -d' ' -f1-2), num_cpus ${NUM_CPUS_VERSION:-?}"
echo
echo "| scenario | nproc | os.cpu_count() | len(os.sched_getaffinity(0)) | available_parallelism() | num_cpus::get() | cinit cpus | cinit workers |"
echo "|---|---|---|---|---|---|---|---|"

row "no limit" - - -

mkgroup "$CPU_HOME" q15; q=$G
echo 100000 >"$q/cpu.cfs_period_us"; echo 150000 >"$q/cpu.cfs_quota_us"
row "quota 1.5 CPUs (leaf)" "$q" - -

mkgroup "$CPU_HOME" q05; h=$G
echo 100000 >"$h/cpu.cfs_period_us"; echo 50000 >"$h/cpu.cfs_quota_us"
row "quota 0.5 CPU (leaf)" "$h" - -

mkgroup "$CPU_HOME" parent; p=$G
echo 100000 >"$p/cpu.cfs_period_us"; echo 50000 >"$p/cpu.cfs_quota_us"
mkgroup "$p" leaf; l=$G
row "quota 0.5 on the parent, process in an unlimited leaf" "$l" - -

mkgroup "$SET_HOME" one; s=$G
cat "$SET_HOME/cpuset.mems" >"$s/cpuset.mems"
echo 1 >"$s/cpuset.cpus"
row "cpuset.cpus = 1, no quota" - "$s" -

row "quota 1.5 + taskset -c 0" "$q" - - 0

mkgroup "$MEM_HOME" m512; m=$G
echo 536870912 >"$m/memory.limit_in_bytes"
row "quota 1.5 + memory limit 512 MiB" "$q" - "$m"
