#!/bin/sh
# Where in a rolling restart does latency go up? A diagnosis, not a
# benchmark table: one cinit roll under wrk, every response timed, laid out
# in 0.5 s steps next to cinit's own events (worker started, ready,
# replaced, old worker gone).
#
#   init --workers N --listen 127.0.0.1:8000 --log-format json \
#        -- uvicorn app.main:app --fd 3 --no-access-log
#
# with APP_STARTUP_DELAY=5 (examples/fastapi), in a network namespace of
# its own (unshare --net: nothing else on its loopback, and the TCP
# counters of `nstat` are its own). wrk runs one connection per thread
# (-tC -cC) with a Lua script that reads the clock in request() and
# response(), so each response's latency is known and when its request was
# sent; one SIGHUP goes to the init HUP_AT seconds in. Prints, per 0.5 s of
# request send time (0 = the HUP): requests, p50, p99 and max latency;
# cinit's events where they fall; the slowest requests; wrk's summary; how
# wrk's connections are spread over the workers after the roll; the init's
# own CPU time over the roll; and the TCP counters from the HUP until the last old worker has exited
# (TcpExtTCPAbortOnClose: a socket closed with unread data, a RST sent;
# TcpExtTCPAbortOnData: data came for a socket already closed, a RST sent).
#
# Prints bench/header.sh's header first; builds the shipped binary with
# `bash .ci/release`; installs nothing. Usage (root):
#     bash bench/reload-timeline.sh
# Environment: N (1 worker), C (50 connections), D (16 s), HUP_AT (2 s),
# NOHUP=1 (the same window without the signal; the counters then run to
# wrk's end and include its own resets), STARTUP (5 s),
# CARGO_TARGET_DIR. Needs wrk, python3 with examples/fastapi's requirements,
# unshare, nstat and ss (iproute2). Kills what it started.
set -eu
SELF=$(cd "$(dirname "$0")" && pwd)/$(basename "$0")
cd "$(dirname "$0")/.."
N=${N:-1} C=${C:-50} D=${D:-16} HUP_AT=${HUP_AT:-2} STARTUP=${STARTUP:-5}
INIT=$(pwd)/${CARGO_TARGET_DIR:-target}/x86_64-unknown-linux-musl/release/init
PYBIN=$(python3 -c 'import os, sys; print(os.path.dirname(os.path.realpath(sys.executable)))')

if [ "${RELOAD_TIMELINE_INNER:-}" != 1 ]; then
    for c in wrk unshare nstat ss python3; do
        command -v $c >/dev/null || { echo "reload-timeline: needs $c" >&2; exit 1; }
    done
    python3 -c 'import fastapi, uvicorn' 2>/dev/null ||
        { echo "reload-timeline: needs examples/fastapi/requirements.txt (pip)" >&2; exit 1; }
    echo "reload-timeline: building the shipped binary: bash .ci/release" >&2
    bash .ci/release >&2 || { echo "reload-timeline: bash .ci/release failed" >&2; exit 1; }
    . bench/header.sh
    bench_header "bash bench/reload-timeline.sh" "N=$N C=$C D=$D HUP_AT=$HUP_AT STARTUP=$STARTUP${NOHUP:+ NOHUP=$NOHUP}" \
        "$INIT" "$(python3 -c 'import platform
from importlib.metadata import version
print(", ".join(["Python " + platform.python_version()] + [p + " " + version(p) for p in ("fastapi", "uvicorn")]))'), $(wrk -v 2>&1 | head -n 1 | cut -d' ' -f1-2)"
    echo
    exec env RELOAD_TIMELINE_INNER=1 unshare --net sh "$SELF" "$@"
fi

ip link set lo up
STATE=$(mktemp -d /tmp/reload-timeline.XXXXXX)
IPID=
cleanup() {
    set +e
    [ -n "$IPID" ] && kill -KILL -- "-$IPID" 2>/dev/null
    rm -rf "$STATE"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
mkdir "$STATE/lat"
export NSTAT_HISTORY="$STATE/nstat.history"  # not the one shared with the host's namespace

# One connection per wrk thread: request() and response() alternate, so the
# difference of the two clock readings is that response's latency.
cat > "$STATE/timed.lua" <<EOF
local ffi = require("ffi")
ffi.cdef[[
typedef struct { long tv_sec; long tv_nsec; } timeline_ts;
int clock_gettime(int clk, timeline_ts *tp);
]]
local ts = ffi.new("timeline_ts")
local function now()
  ffi.C.clock_gettime(0, ts) -- CLOCK_REALTIME, the clock of cinit's "ts"
  return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) * 1e-9
end
local counter = 0
function setup(thread) counter = counter + 1; thread:set("id", counter) end
local sent, f
function init(args) f = io.open("$STATE/lat/" .. id, "w") end
function request() sent = now(); return wrk.format() end
function response(status, headers, body)
  local t = now()
  -- buffered; wrk's exit() flushes it
  f:write(string.format("%.6f %.3f %d\n", sent, (t - sent) * 1000, status))
end
EOF

(cd examples/fastapi && APP_STARTUP_DELAY=$STARTUP exec setsid "$INIT" --log-format json \
    --workers "$N" --listen 127.0.0.1:8000 -- "$PYBIN/uvicorn" app.main:app --fd 3 \
    --no-access-log) > "$STATE/cinit.log" 2>&1 &
IPID=$!
URL="http://127.0.0.1:8000/items/5?q=somequery"
i=0
until grep -q '"event":"all_ready"' "$STATE/cinit.log" 2>/dev/null; do
    i=$((i + 1)); [ $i -lt 600 ] || { echo "reload-timeline: not ready in 60 s" >&2; exit 1; }
    sleep 0.1
done
wrk -t"$C" -c"$C" -d2s "$URL" > /dev/null
wrk -t"$C" -c"$C" -d"${D}s" --timeout="${D}s" --latency -s "$STATE/timed.lua" "$URL" > "$STATE/wrk.out" &
WPID=$!
sleep "$HUP_AT"
# The TCP counters from just before the HUP until the last old worker has
# exited (or wrk ends): not over wrk's own exit, which resets connections
# that still have a response in flight.
nstat -n
cpu() { awk '{ print $14 + $15 }' /proc/"$IPID"/stat; }  # utime + stime, clock ticks
CPU0=$(cpu)
date +%s.%N > "$STATE/t_hup"
[ "${NOHUP:-}" = 1 ] || kill -HUP "$IPID"
while kill -0 "$WPID" 2>/dev/null &&
    [ "$(grep -c '"event":"retired"' "$STATE/cinit.log" 2>/dev/null)" -lt "$N" ]; do
    sleep 0.05
done
nstat -s TcpExtTCPAbortOnClose TcpExtTCPAbortOnData TcpOutRsts > "$STATE/nstat"
date +%s.%N > "$STATE/t_nstat"
echo $(($(cpu) - CPU0)) > "$STATE/cpu"
# How wrk's connections are spread over the workers once the roll is over
# (wrk reconnects after each error; the workers' accept loops share them out).
sleep 0.5
ss -tnpH state established "( sport = :8000 )" 2>/dev/null | grep -o 'pid=[0-9]*' > "$STATE/conns" || true
for w in $(cat /proc/"$IPID"/task/*/children); do
    grep -c "^pid=$w\$" "$STATE/conns" || true
done | sort -rn | paste -sd/ > "$STATE/split"
wait "$WPID"
kill -TERM "$IPID"; wait "$IPID" || true

python3 - "$STATE" <<'EOF'
import glob, json, math, sys
state = sys.argv[1]
t0 = float(open(f"{state}/t_hup").read())
rows = []
for path in glob.glob(f"{state}/lat/*"):
    for line in open(path):
        sent, lat, status = line.split()
        rows.append((float(sent) - t0, float(lat)))
events = []
for line in open(f"{state}/cinit.log"):
    if line.startswith("{"):
        e = json.loads(line)
        if e["event"] in ("reload", "started", "ready", "replaced", "retired"):
            events.append((e["ts"] - t0, e["msg"]))
events = [e for e in events if e[0] > -3]
steps = {}
for sent, lat in rows:
    steps.setdefault(math.floor(sent / 0.5), []).append(lat)
print("sent at, s (0 = HUP) | requests | p50 ms | p99 ms | max ms")
k_events = 0
for k in sorted(steps):
    while k_events < len(events) and events[k_events][0] < k * 0.5:
        print(f"  >> {events[k_events][0]:+.3f} s: {events[k_events][1]}")
        k_events += 1
    v = sorted(steps[k])
    print(f"{k * 0.5:+6.1f} | {len(v):5d} | {v[len(v) // 2]:6.1f} | "
          f"{v[min(len(v) - 1, int(len(v) * 0.99))]:6.1f} | {v[-1]:6.1f}")
for t, msg in events[k_events:]:
    print(f"  >> {t:+.3f} s: {msg}")
slow = sorted(rows, key=lambda r: -r[1])[:5]
print("slowest: " + ", ".join(f"{l:.1f} ms sent at {s:+.2f} s" for s, l in slow))
EOF
grep -E "Latency |requests in|Socket errors|Non-2xx" "$STATE/wrk.out" || true
echo "wrk's connections per worker 0.5 s after the roll: $(cat "$STATE/split")"
echo "the init's own CPU time over the roll: $(cat "$STATE/cpu") clock ticks of 1/$(getconf CLK_TCK) s"
echo "TCP counters from the HUP until the last old worker had exited," \
    "$(awk -v a="$(cat "$STATE/t_hup")" -v b="$(cat "$STATE/t_nstat")" 'BEGIN { printf "%.1f", b - a }') s" \
    "(this namespace only; AbortOnClose: closed with unread data, AbortOnData: data came after the close):"
sed -n '2,$p' "$STATE/nstat"
