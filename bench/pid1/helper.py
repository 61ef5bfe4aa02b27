#!/usr/bin/env python3
"""Helpers for bench/pid1.sh: orchestration of the orphan storms, and SIGTERM
latency.

INIT is a path to an init, run as `INIT -- ...`, or `none` for no init. Each
subcommand runs RUNS rounds, each round trying every INIT once (interleaved,
so that load from elsewhere spreads evenly), and prints one line per INIT.
STORM is the binary built from storm.rs.

  storm RUNS N STORM INIT...       as PID 1 (`unshare -fp --mount-proc INIT --
                                   STORM storm N`): the child forks N children
                                   that exit at once, and exits without waiting.
                                   Prints: median wall ms; median ms from the
                                   child's exit to the command's end; the most
                                   processes of that pid namespace still on the
                                   host afterwards
  reap RUNS N SECS STORM INIT...   as PID 1, `STORM reap N SECS`: N orphans are
                                   handed to PID 1 while the child lives.
                                   Prints: median ms until all are reaped; the
                                   most processes left at the deadline
  termlat RUNS INIT...             not PID 1: `INIT -- python3 helper.py
                                   term-child`; SIGTERM to INIT's pid, and the
                                   child's CLOCK_MONOTONIC time of receipt.
                                   Prints: median and min microseconds
  term-child                       the child of termlat
"""
import os
import signal
import statistics
import subprocess
import sys
import time

PY = sys.executable
ME = os.path.abspath(__file__)


def _cmd(init, pid1):
    pre = ["unshare", "-fp", "--mount-proc"] if pid1 else []
    return pre + ([] if init == "none" else [init, "--"])


def _ns_left(ns):
    n = 0
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                n += os.readlink(f"/proc/{d}/ns/pid") == ns
            except OSError:
                pass
    return n


def storm(runs, n, stormbin, inits):
    res = {i: ([], [], []) for i in inits}
    for _ in range(runs):
        for init in inits:
            t0 = time.monotonic_ns()
            p = subprocess.run(_cmd(init, True) + [stormbin, "storm", str(n)],
                               stdout=subprocess.PIPE, timeout=300)
            t1 = time.monotonic_ns()
            if p.returncode != 0:
                sys.exit(f"storm: {init} exited {p.returncode}")
            ns, t_exit = p.stdout.split()[-2:]
            walls, tails, left = res[init]
            walls.append((t1 - t0) / 1e6)
            tails.append((t1 - int(t_exit)) / 1e6)
            left.append(_ns_left(ns.decode()))
    for init in inits:
        walls, tails, left = res[init]
        print(f"{statistics.median(walls):.0f} {statistics.median(tails):.1f} {max(left)}")


def reap(runs, n, timeout, stormbin, inits):
    res = {i: ([], []) for i in inits}
    for _ in range(runs):
        for init in inits:
            p = subprocess.run(_cmd(init, True) + [stormbin, "reap", str(n), str(timeout)],
                               stdout=subprocess.PIPE, timeout=300)
            if p.returncode != 0:
                sys.exit(f"reap: {init} exited {p.returncode}")
            ms, left = p.stdout.split()[-2:]
            res[init][0].append(float(ms))
            res[init][1].append(int(left))
    for init in inits:
        ms, left = res[init]
        print(f"{statistics.median(ms):.0f} {max(left)}")


def term_child():
    def on_term(_sig, _frm):
        sys.stdout.write(f"{time.monotonic_ns()}\n")
        sys.stdout.flush()
        os._exit(0)
    signal.signal(signal.SIGTERM, on_term)
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    while True:
        signal.pause()


def termlat(runs, inits):
    lats = {i: [] for i in inits}
    for _ in range(runs):
        for init in inits:
            p = subprocess.Popen(_cmd(init, False) + [PY, ME, "term-child"],
                                 stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
            try:
                if p.stdout.readline().strip() != b"ready":
                    sys.exit(f"termlat: {init} did not start the child")
                time.sleep(0.02)  # let the child reach pause()
                t0 = time.monotonic_ns()
                os.kill(p.pid, signal.SIGTERM)
                t1 = int(p.stdout.readline())
                lats[init].append((t1 - t0) / 1e3)
                p.wait(timeout=10)
            finally:
                if p.poll() is None:
                    p.kill()
                    p.wait()
    for init in inits:
        print(f"{statistics.median(lats[init]):.0f} {min(lats[init]):.0f}")


def main():
    a = sys.argv[1:]
    if not a:
        sys.exit(__doc__)
    if a[0] == "storm":
        storm(int(a[1]), int(a[2]), a[3], a[4:])
    elif a[0] == "reap":
        reap(int(a[1]), int(a[2]), float(a[3]), a[4], a[5:])
    elif a[0] == "term-child":
        term_child()
    elif a[0] == "termlat":
        termlat(int(a[1]), a[2:])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
