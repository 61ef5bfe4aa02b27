# bench/header.sh: sourced by the benchmarks (POSIX sh and bash alike).
#
# bench_header prints the lines every benchmark puts above its table, so
# that a figure quoted in docs/benchmarks.md names the command and the build
# that produced it:
#
#   command:  bash bench/pid1.sh   (PID1_RUNS=300 ...)
#   commit:   1cfd5b1-dirty        (git rev-parse --short HEAD; -dirty: tracked files changed)
#   date:     2026-11-26 03:25 UTC
#   machine:  Linux 6.18.44 x86_64, 2 CPUs (nproc), load average 1.03 0.98 0.80
#   cinit:    target/x86_64-unknown-linux-musl/release/init, 1147152 bytes, static, stripped
#   peers:    tini 0.19.0, ...
#
# Usage: bench_header COMMAND SETTINGS CINIT_BINARY PEERS
# (SETTINGS: the environment knobs in effect, "" for none.)
#
# bench_need_packages installs missing Debian packages only when asked:
# BENCH_INSTALL=1, or a "y" at the prompt when stdin is a terminal; else it
# names them and exits 1. Usage: bench_need_packages PKG...

bench_commit() {
    _root=${BENCH_ROOT:-$(cd "$(dirname "$0")/.." && pwd)}
    _c=$(git -C "$_root" rev-parse --short HEAD 2>/dev/null) || { echo "unknown (not a git checkout)"; return; }
    if [ -n "$(git -C "$_root" status --porcelain --untracked-files=no 2>/dev/null)" ]; then
        _c="$_c-dirty"
    fi
    echo "$_c"
}

bench_header() {
    _bin=$3
    _size=$(stat -c %s "$_bin" 2>/dev/null || echo "?")
    _kind=$(file -b "$_bin" 2>/dev/null | sed -n 's/.*\(statically linked\|static-pie linked\|dynamically linked\).*/\1/p')
    case $(file -b "$_bin" 2>/dev/null) in *", stripped"*) _kind="$_kind, stripped" ;; esac
    _load=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null)
    echo "command:  $1${2:+   ($2)}"
    echo "commit:   $(bench_commit)"
    echo "date:     $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "machine:  $(uname -sr) $(uname -m), $(nproc) CPUs (nproc), load average $_load"
    echo "cinit:    $_bin, $_size bytes${_kind:+, $_kind}"
    echo "peers:    $4"
}

bench_need_packages() {
    [ $# -gt 0 ] || return 0
    echo "bench: needs Debian packages that are not installed: $*" >&2
    if [ "${BENCH_INSTALL:-}" != 1 ]; then
        if [ -t 0 ]; then
            printf 'bench: install them now with apt-get? [y/N] ' >&2
            read -r _answer || _answer=
            case $_answer in y | Y | yes) ;; *) echo "bench: not installed; stopping" >&2; exit 1 ;; esac
        else
            echo "bench: run again with BENCH_INSTALL=1 to let it apt-get install them, or install them yourself" >&2
            exit 1
        fi
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2 && apt-get install -y -qq "$@" >&2 ||
        { echo "bench: apt-get install $* failed" >&2; exit 1; }
}
