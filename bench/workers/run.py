#!/usr/bin/env python3
"""Measure one worker manager after another on the same FastAPI app.

Called by bench/workers.sh (which installs, builds and cleans up); usage:

    run.py INIT_BINARY PYTHON_BIN_DIR APP_DIR STATE_DIR

Standard library only. Every measurement reads /proc directly; each server
is started in its own session, and every process of that session is
SIGKILLed when the server is done with (and on any error). The session ids
are appended to STATE_DIR/sids so the shell trap can do the same if this
script itself is killed.

Definitions (the same for every server):

* manager: the process started (cinit's init, gunicorn's arbiter, uvicorn's
  supervisor); tree: the manager and all its descendants.
* workers: the descendants that hold the listening socket (found by the
  socket's inode in /proc/net/tcp and /proc/PID/fd), i.e. not uvicorn's
  multiprocessing resource_tracker.
* throughput: median requests/s of WRK_RUNS runs of `wrk WRK_ARGS` on
  GET /items/5?q=somequery (after a warm-up run); p99 likewise. Each run
  opens its 50 keep-alive connections anew, and how they spread over the
  workers (sampled halfway through, shown per run) decides a lot.
* startup: from just before fork/exec of the manager to the first complete
  answer to GET /items/5?q=somequery, polled with a new connection every
  1 ms while the port refuses connections.
* replace: SIGKILL the oldest worker (up at least 3 s, so cinit's min-uptime
  backoff never applies), then poll GET /pid on fresh connections back to
  back. "fork" = until the manager has a child it did not have before;
  "serving" = until an answer comes from a pid that was not a worker before
  the kill. Median of 3.
* stop: from SIGTERM to the manager to its exit (waitpid).
* RSS / PSS: VmRSS from /proc/PID/status and Pss from
  /proc/PID/smaps_rollup, summed over the tree, sampled once the workers
  have served the load and are idle.
* idle wake-ups: voluntary + involuntary context switches of every thread
  of the manager (/proc/PID/task/*/status) over 10 s with no traffic; the
  workers' are reported too.

Reload (RELOAD=1 or RELOAD=only; one server after the other, 1 and then 2
workers each, every server started anew with APP_STARTUP_DELAY=RELOAD_STARTUP
seconds of lifespan startup):

* ready: the first answer, then GET /pid on fresh connections until every
  worker (every process holding the socket) has answered once; then a 2 s
  `wrk RELOAD_WRK` warm-up.
* window: one `wrk RELOAD_WRK -dRELOAD_S --timeout RELOAD_S --latency` run
  (keep-alive connections, each with one request outstanding at all
  times). The baseline window runs first, with no signal; the reload
  window follows on the same server, with one SIGHUP to the manager
  RELOAD_HUP_AT seconds after wrk started. RELOAD_RUNS (1) rounds of the
  two on the same server (each round once all N workers answer again);
  with several, the table gives the median and each round's value, and
  the target compares the medians. --timeout is the window's length
  because wrk 4.1.0 leaves a response slower than --timeout (default 2 s)
  out of the latency figures and counts it as a "timeout" error instead.
* failed requests: the sum of what wrk 4.1.0 reports. Socket errors:
  connect (socket()/connect() failed at once), read (read() failed, e.g.
  ECONNRESET, or the server closed the connection, EOF, while a request was
  outstanding), write (write() failed: EPIPE, ECONNRESET, or ECONNREFUSED of
  a connection refused after connect() returned EINPROGRESS), timeout (a
  response that took ≥ --timeout); and "Non-2xx or 3xx" (status ≥ 400).
  After each socket error wrk opens a new connection; the request that was
  outstanding is lost, never retried. A request still without an answer
  when the window ends is counted nowhere.
* max, p99: wrk's latency Max and its 99 % line. wrk corrects its histogram
  for coordinated omission (stats_correct: a response that took k times the
  mean interval adds k-1 synthetic samples below it), so a stall raises p99
  far more than one slow response would; max is a real response.
* replaced: how many of the workers serving before the HUP had exited by
  the end of the window, and the time from the HUP until the last of them
  had (polled every 50 ms in /proc).
* connections on the old workers: wrk's established connections held by
  each worker serving before the HUP, its peak over the window (sampled
  every 50 ms, in both windows), summed. wrk closes a connection only
  after an error, so a worker's peak is what it held when it was told to
  stop: the connections a stopping worker can close under a request.
"""

import os
import re
import shlex
import signal
import socket
import statistics
import subprocess
import sys
import time

INIT, PYBIN, APP_DIR, STATE = sys.argv[1:5]
WRK_ARGS = os.environ.get("WRK_ARGS", "-t2 -c50 -d5s").split()
WRK_RUNS = int(os.environ.get("WRK_RUNS", "3"))
WARMUP = os.environ.get("WARMUP", "3s")
IDLE_S = float(os.environ.get("IDLE_S", "10"))
RELOAD = os.environ.get("RELOAD", "0")  # 0: off; 1: after the main table; only
RELOAD_S = int(os.environ.get("RELOAD_S", "20"))
RELOAD_RUNS = int(os.environ.get("RELOAD_RUNS", "1"))
RELOAD_HUP_AT = float(os.environ.get("RELOAD_HUP_AT", "2"))
RELOAD_STARTUP = os.environ.get("RELOAD_STARTUP", "5")
RELOAD_WRK = shlex.split(os.environ.get("RELOAD_WRK", "-t2 -c50"))
RELOAD_SERVERS = os.environ.get("RELOAD_SERVERS", "cinit,gunicorn,uvicorn,uvicorn-hc30").split(",")
PATH = "/items/5?q=somequery"
EXPECT = b'{"item_id":5,"q":"somequery"}'
CLK_TCK = os.sysconf("SC_CLK_TCK")


def log(msg):
    print(f"workers-bench: {msg}", file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------- /proc

def stat_fields(pid):
    """Fields of /proc/PID/stat after the command name (index 0 = state)."""
    with open(f"/proc/{pid}/stat") as f:
        data = f.read()
    return data[data.rindex(")") + 2:].split()


def all_pids():
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def children_map():
    kids = {}
    for pid in all_pids():
        try:
            ppid = int(stat_fields(pid)[1])
        except (OSError, ValueError):
            continue
        kids.setdefault(ppid, []).append(pid)
    return kids


def children(pid):
    """Direct children, from /proc/PID/task/*/children (cheap enough to poll)."""
    out = set()
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            try:
                with open(f"/proc/{pid}/task/{tid}/children") as f:
                    out.update(int(x) for x in f.read().split())
            except OSError:
                pass
    except OSError:
        return set(children_map().get(pid, []))
    return out


def tree(pid):
    kids = children_map()
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def session_pids(sid):
    out = []
    for pid in all_pids():
        try:
            if int(stat_fields(pid)[3]) == sid:
                out.append(pid)
        except (OSError, ValueError, IndexError):
            pass
    return out


def live(pids):
    """The pids that still run (zombies and gone ones left out)."""
    out = []
    for pid in pids:
        try:
            if stat_fields(pid)[0] != "Z":
                out.append(pid)
        except OSError:
            pass
    return out


def status_kib(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def pss_kib(pid):
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return 0


def ctxt(pid):
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/status") as f:
                for line in f:
                    if "ctxt_switches" in line:
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


def listen_inode(port):
    hexport = f"{port:04X}"
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            next(f)
            for line in f:
                cols = line.split()
                if cols[1].endswith(":" + hexport) and cols[3] == "0A":
                    return cols[9]
    return None


def holds(pid, inode):
    target = f"socket:[{inode}]"
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") == target:
                    return True
            except OSError:
                pass
    except OSError:
        pass
    return False


def workers(manager, port):
    inode = listen_inode(port)
    return sorted(p for p in tree(manager)[1:] if holds(p, inode))


def start_time(pid):
    return int(stat_fields(pid)[19]) / CLK_TCK  # seconds since boot


def uptime():
    with open("/proc/uptime") as f:
        return float(f.read().split()[0])


# ---------------------------------------------------------------- HTTP

def get(port, path, timeout=10.0):
    """One request on a fresh connection; the body, or None if refused."""
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    except ConnectionRefusedError:
        return None
    with s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                  .encode())
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(f"bad answer: {data[:200]!r}")
    return body


def wait_first_answer(port, proc, limit=60.0):
    t_end = time.monotonic() + limit
    while time.monotonic() < t_end:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            body = get(port, PATH)
        except (OSError, RuntimeError):
            body = None
        if body is not None:
            if body != EXPECT:
                raise RuntimeError(f"unexpected body {body!r}")
            return time.monotonic()
        time.sleep(0.001)
    raise RuntimeError("no answer within %.0f s" % limit)


def answering_pid(port):
    body = get(port, "/pid")
    m = re.search(rb'"pid":\s*(\d+)', body or b"")
    return int(m.group(1)) if m else None


# ---------------------------------------------------------------- wrk

def conn_split(port, pids):
    """Established connections on local port PORT held by each of PIDS,
    most first."""
    return sorted(conn_counts(port, pids).values(), reverse=True)


def conn_counts(port, pids):
    """{pid: established connections on local port PORT it holds}."""
    est = set()
    hexport = f":{port:04X}"
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            next(f)
            for line in f:
                cols = line.split()
                if cols[1].endswith(hexport) and cols[3] == "01":
                    est.add(f"socket:[{cols[9]}]")
    out = {}
    for pid in pids:
        n = 0
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                try:
                    n += os.readlink(f"/proc/{pid}/fd/{fd}") in est
                except OSError:
                    pass
        except OSError:
            pass
        out[pid] = n
    return out


def wrk(port, args, split_of=None):
    """Run wrk; with split_of (worker pids), also sample halfway through
    how its connections are spread over those workers."""
    p = subprocess.Popen(
        ["wrk", *args, "--latency", f"http://127.0.0.1:{port}{PATH}"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    split = None
    if split_of:
        d = re.search(r"-d(\d+)s", " ".join(args))
        time.sleep(int(d.group(1)) / 2 if d else 1)
        split = conn_split(port, split_of)
    out, err = p.communicate()
    if p.returncode != 0:
        raise RuntimeError(f"wrk failed: {err.strip()}")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p99 = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
    p99_ms = float(p99.group(1)) * {"us": 1e-3, "ms": 1, "s": 1e3}[p99.group(2)]
    errs = re.search(r"Socket errors: (.*)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    problems = []
    if errs:
        problems.append("socket errors " + errs.group(1))
    if non2xx:
        problems.append(f"{non2xx.group(1)} non-2xx")
    if split_of:
        return rps, p99_ms, problems, split
    return rps, p99_ms, problems


# ---------------------------------------------------------------- one server

def kill_session(sid):
    for pid in session_pids(sid):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def start_server(name, argv, logpath, extra_env=None):
    """Start ARGV in its own session (its sid recorded for the shell's
    trap), output to LOGPATH; returns the Popen, the log file and the
    monotonic time taken just before the fork."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("CINIT_", "UVICORN_", "GUNICORN_", "APP_"))
           and k not in ("WEB_CONCURRENCY", "LISTEN_FDS", "LISTEN_PID",
                         "NOTIFY_SOCKET")}
    env["PATH"] = PYBIN + os.pathsep + env.get("PATH", "")
    env.update(extra_env or {})
    logf = open(logpath, "wb")
    log(f"{name}: {' '.join(argv)}  (log: {logpath})")
    t0 = time.monotonic()
    proc = subprocess.Popen(argv, cwd=APP_DIR, env=env, stdin=subprocess.DEVNULL,
                            stdout=logf, stderr=subprocess.STDOUT,
                            start_new_session=True)
    with open(os.path.join(STATE, "sids"), "a") as f:
        f.write(f"{proc.pid}\n")
    return proc, logf, t0


def stop_server(proc, logf):
    kill_session(proc.pid)
    if proc.poll() is None:
        proc.kill()
    proc.wait()
    logf.close()


def measure(name, argv, port, logpath):
    r = {"name": name}
    proc, logf, t0 = start_server(name, argv, logpath)
    sid = proc.pid
    try:
        r["startup_ms"] = (wait_first_answer(port, proc) - t0) * 1e3
        log(f"{name}: first answer after {r['startup_ms']:.0f} ms")
        # Wait until every worker holds the socket (the first answer may
        # come before the second worker is up).
        t_end = time.monotonic() + 30
        while len(workers(proc.pid, port)) < 2 and time.monotonic() < t_end:
            time.sleep(0.05)
        ws = workers(proc.pid, port)
        if len(ws) != 2:
            raise RuntimeError(f"expected 2 workers, found {ws}")

        log(f"{name}: warm-up wrk {WARMUP}")
        wrk(port, ["-t2", "-c50", "-d" + WARMUP])
        # Each run opens its connections anew and the kernel + asyncio's
        # greedy accept loop decide how they spread over the workers (all
        # 50 on one worker halves the throughput): several runs, the median
        # reported, the spread of each shown.
        runs = []
        for i in range(WRK_RUNS):
            log(f"{name}: wrk {' '.join(WRK_ARGS)} (run {i+1}/{WRK_RUNS})")
            rps, p99, problems, split = wrk(port, WRK_ARGS, split_of=ws)
            runs.append((rps, p99, problems, split))
            log(f"{name}: {rps:.0f} req/s, p99 {p99:.1f} ms, connections per "
                f"worker {'/'.join(map(str, split))}"
                + (f" ({'; '.join(problems)})" if problems else ""))
        r["rps"] = statistics.median(x[0] for x in runs)
        r["p99_ms"] = statistics.median(x[1] for x in runs)
        r["wrk_problems"] = [p for x in runs for p in x[2]]
        r["runs"] = runs
        # One keep-alive connection: shows a missing TCP_NODELAY directly
        # (each response then waits ~40 ms for the client's delayed ACK).
        r["c1_rps"], r["c1_p99_ms"], _ = wrk(port, ["-t1", "-c1", "-d3s"])
        log(f"{name}: 1 connection: {r['c1_rps']:.0f} req/s, p99 {r['c1_p99_ms']:.1f} ms")

        # Idle: memory, then context switches over IDLE_S.
        time.sleep(1.0)
        procs = tree(proc.pid)
        r["tree_n"] = len(procs)
        r["tree_rss"] = sum(status_kib(p, "VmRSS") for p in procs)
        psss = [pss_kib(p) for p in procs]
        r["tree_pss"] = None if None in psss else sum(psss)
        r["mgr_rss"] = status_kib(proc.pid, "VmRSS")
        r["mgr_pss"] = pss_kib(proc.pid)
        ws = workers(proc.pid, port)
        r["worker_rss"] = [status_kib(p, "VmRSS") for p in ws]
        c_mgr, c_w = ctxt(proc.pid), {p: ctxt(p) for p in ws}
        time.sleep(IDLE_S)
        r["mgr_wakeups"] = (ctxt(proc.pid) - c_mgr) / IDLE_S
        r["worker_wakeups"] = sum(ctxt(p) - c for p, c in c_w.items()) / IDLE_S
        log(f"{name}: tree {r['tree_n']} procs, RSS {r['tree_rss']/1024:.1f} MiB, "
            f"manager RSS {r['mgr_rss']/1024:.1f} MiB, manager "
            f"{r['mgr_wakeups']:.1f} wake-ups/s, workers {r['worker_wakeups']:.1f}/s")

        # Replace a SIGKILLed worker, 3 times.
        forks, serves = [], []
        for i in range(3):
            ws = workers(proc.pid, port)
            victim = min(ws, key=start_time)
            age = uptime() - start_time(victim)
            if age < 3.0:
                time.sleep(3.0 - age)
            before_kids = children(proc.pid)
            before_workers = set(ws)
            t_kill = time.monotonic()
            os.kill(victim, signal.SIGKILL)
            t_fork = None
            t_end = t_kill + 30
            while time.monotonic() < t_end:
                if t_fork is None and children(proc.pid) - before_kids:
                    t_fork = time.monotonic()
                try:
                    pid = answering_pid(port)
                except (OSError, RuntimeError):
                    pid = None
                if pid is not None and pid != victim and pid not in before_workers:
                    t_serve = time.monotonic()
                    break
                time.sleep(0.001)
            else:
                raise RuntimeError("killed worker not replaced within 30 s")
            if t_fork is None:  # served before the poll saw the fork
                t_fork = t_serve
            forks.append((t_fork - t_kill) * 1e3)
            serves.append((t_serve - t_kill) * 1e3)
            log(f"{name}: replace #{i+1}: new child after {forks[-1]:.0f} ms, "
                f"new pid serving after {serves[-1]:.0f} ms")
        r["replace_fork_ms"] = statistics.median(forks)
        r["replace_serve_ms"] = statistics.median(serves)
        r["replace_serve_all"] = serves

        # Graceful stop.
        time.sleep(0.5)
        t_term = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        r["exit"] = proc.wait(timeout=60)
        r["stop_ms"] = (time.monotonic() - t_term) * 1e3
        # Processes of the session still alive (not zombies) once the
        # manager has exited, and how long until they are gone (≤ 3 s).
        left = live(session_pids(sid))
        r["leftover"], r["leftover_ms"] = len(left), None
        if left:
            t_end = time.monotonic() + 3
            while live(left) and time.monotonic() < t_end:
                time.sleep(0.005)
            if not live(left):
                r["leftover_ms"] = (time.monotonic() - t_term) * 1e3 - r["stop_ms"]
        log(f"{name}: SIGTERM -> exit {r['exit']} after {r['stop_ms']:.0f} ms"
            + (f"; {len(left)} process(es) outlived the manager"
               + (f" by {r['leftover_ms']:.0f} ms" if r["leftover_ms"] is not None
                  else " by more than 3 s") if left else ""))
        return r
    finally:
        stop_server(proc, logf)


# ---------------------------------------------------------------- reload

TIME_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}


def ms(text):
    """wrk's formatted time (12.5us, 3.20ms, 5.51s, 1.02m) in ms."""
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text)
    if not m:
        raise RuntimeError(f"cannot read wrk's time {text!r}")
    return float(m.group(1)) * TIME_UNITS[m.group(2)]


def parse_wrk(out):
    """The figures of one wrk 4.1.0 report (see the docstring)."""
    lat = re.search(r"^\s+Latency\s+(\S+)\s+(\S+)\s+(\S+)", out, re.M)
    p99 = re.search(r"^\s+99%\s+(\S+)\s*$", out, re.M)
    done = re.search(r"^\s+(\d+) requests in", out, re.M)
    errs = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), "
                     r"timeout (\d+)", out)
    status = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if not (lat and p99 and done):
        raise RuntimeError(f"cannot read wrk's output:\n{out}")
    r = {"max_ms": ms(lat.group(3)), "p99_ms": ms(p99.group(1)),
         "requests": int(done.group(1))}
    for i, k in enumerate(("connect", "read", "write", "timeout")):
        r[k] = int(errs.group(i + 1)) if errs else 0
    r["status"] = int(status.group(1)) if status else 0
    r["failed"] = sum(r[k] for k in ("connect", "read", "write", "timeout", "status"))
    return r


def serving(manager, port):
    """The processes that hold the socket: the workers, or the manager
    itself when it serves alone (plain uvicorn with --workers 1)."""
    ws = workers(manager, port)
    if not ws and holds(manager, listen_inode(port)):
        return [manager]
    return ws


def wait_all_answer(port, proc, n, limit=60.0):
    """GET /pid on fresh connections until N distinct workers of PROC have
    answered (all of them done with their lifespan startup)."""
    seen = set()
    t_end = time.monotonic() + limit
    while time.monotonic() < t_end:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        ws = set(serving(proc.pid, port))
        try:
            pid = answering_pid(port)
        except (OSError, RuntimeError):
            pid = None
        if pid is not None:
            seen.add(pid)
        if len(ws) == n and ws <= seen:
            return
        time.sleep(0.01)
    raise RuntimeError(f"not all {n} workers answered within {limit:.0f} s "
                       f"(answered: {sorted(seen)})")


def window(port, proc, hup, outpath):
    """One wrk window; with HUP, one SIGHUP to the manager RELOAD_HUP_AT s in.
    wrk's report is kept in OUTPATH."""
    before = serving(proc.pid, port)
    p = subprocess.Popen(
        ["wrk", *RELOAD_WRK, f"-d{RELOAD_S}s", f"--timeout={RELOAD_S}s", "--latency",
         f"http://127.0.0.1:{port}{PATH}"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # The same polling in both windows, so that its cost is in the baseline
    # too: every 50 ms, the connections each worker of before holds (their
    # peak: with wrk a connection ends only on an error, so a worker holds
    # its most just before it stops and closes them) and whether it runs.
    t_start = time.monotonic()
    t_hup = t_gone = None
    peak = dict.fromkeys(before, 0)
    while p.poll() is None:
        for pid, n in conn_counts(port, before).items():
            peak[pid] = max(peak[pid], n)
        if hup and t_hup is None and time.monotonic() - t_start >= RELOAD_HUP_AT:
            t_hup = time.monotonic()
            os.kill(proc.pid, signal.SIGHUP)
        if t_hup is not None and t_gone is None and not live(before):
            t_gone = time.monotonic()
        time.sleep(0.05)
    out, err = p.communicate()
    with open(outpath, "w") as f:
        f.write(out + err)
    if p.returncode != 0:
        raise RuntimeError(f"wrk failed: {err.strip()}")
    r = parse_wrk(out)
    r["n_before"] = len(before)
    r["conns_peak"] = sum(peak.values())
    r["replaced"] = len(before) - len(live(before))
    r["roll_s"] = None if t_gone is None else t_gone - t_hup
    r["manager_exit"] = proc.poll()
    return r


def reload_pair(name, argv, port, n, logpath):
    """Start the server, wait for all N workers, warm up, then RELOAD_RUNS
    rounds of a baseline window and a reload window (see the docstring);
    returns one {"baseline": ..., "HUP": ...} per round."""
    proc, logf, _ = start_server(f"{name} ({n})", argv, logpath,
                                 {"APP_STARTUP_DELAY": RELOAD_STARTUP})
    try:
        wait_first_answer(port, proc)
        wait_all_answer(port, proc, n)
        log(f"{name} ({n}): all {n} worker(s) answer; warm-up wrk 2s")
        subprocess.run(["wrk", *RELOAD_WRK, "-d2s", f"http://127.0.0.1:{port}{PATH}"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        rounds = []
        for i in range(RELOAD_RUNS):
            if i:
                # The last roll may still be under way: N workers again,
                # each of them answering, before the next baseline.
                wait_all_answer(port, proc, n)
            out = {}
            rounds.append(out)
            for hup in (False, True):
                label = "HUP" if hup else "baseline"
                tag = f"{name} ({n}), round {i + 1}/{RELOAD_RUNS}, {label}"
                log(f"{tag}: wrk {' '.join(RELOAD_WRK)} -d{RELOAD_S}s"
                    + (f", SIGHUP after {RELOAD_HUP_AT:g} s" if hup else ""))
                r = window(port, proc, hup, f"{logpath[:-4]}-{i + 1}-{label}.wrk")
                out[label] = r
                log(f"{tag}: {r['requests']} requests, {r['failed']} failed "
                    f"(connect {r['connect']}, read {r['read']}, write {r['write']}, "
                    f"timeout {r['timeout']}, status {r['status']}), max "
                    f"{r['max_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms"
                    + (f"; {r['replaced']}/{r['n_before']} old workers (at most "
                       f"{r['conns_peak']} connections on them) gone"
                       + (f" {r['roll_s']:.2f} s after the HUP" if r["roll_s"] is not None
                          else "")
                       if hup else "")
                    + (f"; manager exited ({exit_text(r['manager_exit'])})"
                       if r["manager_exit"] is not None else ""))
                if r["manager_exit"] is not None:
                    return rounds
        return rounds
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                pass
        stop_server(proc, logf)


def exit_text(code):
    if code < 0:
        return signal.Signals(-code).name
    return f"code {code}"


def reload_table():
    uv = os.path.join(PYBIN, "uvicorn")
    gu = os.path.join(PYBIN, "gunicorn")
    servers = [
        ("cinit", "cinit", (1, 2), lambda p, n: [
            INIT, "--workers", str(n), "--listen", f"127.0.0.1:{p}",
            "--", uv, "app.main:app", "--fd", "3", "--no-access-log"]),
        ("gunicorn", "gunicorn + UvicornWorker", (1, 2), lambda p, n: [
            gu, "-k", "uvicorn.workers.UvicornWorker", "-w", str(n),
            "-b", f"127.0.0.1:{p}", "app.main:app"]),
        ("uvicorn", "`uvicorn --workers`", (1, 2), lambda p, n: [
            uv, "app.main:app", "--workers", str(n), "--host", "127.0.0.1",
            "--port", str(p), "--no-access-log"]),
        # uvicorn's supervisor waits for a new worker at most
        # --timeout-worker-healthcheck (5 s) before it gives the restart
        # up; with a 5 s startup it never finishes one. The same with time
        # enough (uvicorn with one worker has no supervisor: 2 only).
        ("uvicorn-hc30", "`uvicorn --workers --timeout-worker-healthcheck 30`", (2,),
         lambda p, n: [
            uv, "app.main:app", "--workers", str(n), "--host", "127.0.0.1",
            "--port", str(p), "--no-access-log", "--timeout-worker-healthcheck", "30"]),
    ]
    unknown = set(RELOAD_SERVERS) - {key for key, *_ in servers}
    if unknown:
        raise SystemExit(f"RELOAD_SERVERS: unknown {', '.join(sorted(unknown))}")
    rows = []
    for key, name, counts, argv in servers:
        if key not in RELOAD_SERVERS:
            continue
        for n in counts:
            port = free_port()
            slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
            res = reload_pair(name, argv(port, n), port, n,
                              os.path.join(STATE, f"reload-{slug}-{n}.log"))
            rows.append((name, n, res))

    def failed(r):
        parts = [f"{r[k]} {k}" for k in ("connect", "read", "write", "timeout") if r[k]]
        if r["status"]:
            parts.append(f"{r['status']} status ≥ 400")
        return f"{r['failed']:,}" + (f" ({', '.join(parts)})" if parts else "")

    def cell(vals, fmt):
        """One value, or with several rounds their median and each."""
        if len(vals) == 1:
            return fmt(vals[0])
        return f"{fmt(statistics.median(vals))} ({', '.join(fmt(v) for v in vals)})"

    def roll(hs):
        text = ", ".join(f"{h['replaced']} of {h['n_before']}" for h in hs)
        times = [f"{h['roll_s']:.1f}" if h["roll_s"] is not None else "–" for h in hs]
        if any(h["roll_s"] is not None for h in hs):
            text += f"; the last {', '.join(times)} s after the HUP"
        text += (f"; at most {', '.join(str(h['conns_peak']) for h in hs)} "
                 "connections on them")
        for h in hs:
            if h["manager_exit"] is not None:
                text += f"; the manager exited ({exit_text(h['manager_exit'])})"
        return text

    def f1(x):
        return f"{x:.1f}"

    runs = f", {RELOAD_RUNS} rounds: median (each)" if RELOAD_RUNS > 1 else ""
    print(f"| server | workers | window (wrk {' '.join(RELOAD_WRK)} -d{RELOAD_S}s{runs}) "
          "| requests | failed requests | max latency, ms | p99, ms "
          "| old workers gone by the window's end |")
    print("|---|---:|---|---:|---:|---:|---:|---|")
    verdicts = []
    for name, n, rounds in rows:
        bs = [x["baseline"] for x in rounds]
        hs = [x["HUP"] for x in rounds if "HUP" in x]
        print(f"| {name} | {n} | baseline | {cell([b['requests'] for b in bs], '{:,.0f}'.format)} "
              f"| {'; '.join(failed(b) for b in bs)} "
              f"| {cell([b['max_ms'] for b in bs], f1)} "
              f"| {cell([b['p99_ms'] for b in bs], f1)} | – |")
        if not hs:
            print(f"| {name} | {n} | HUP | – | – | – | – | "
                  f"the manager exited during the baseline |")
            continue
        b_max = statistics.median(b["max_ms"] for b in bs)
        h_max = statistics.median(h["max_ms"] for h in hs)
        print(f"| {name} | {n} | HUP at {RELOAD_HUP_AT:g} s "
              f"| {cell([h['requests'] for h in hs], '{:,.0f}'.format)} "
              f"| {'; '.join(failed(h) for h in hs)} "
              f"| {cell([h['max_ms'] for h in hs], f1)} [{h_max - b_max:+.1f}] "
              f"| {cell([h['p99_ms'] for h in hs], f1)} | {roll(hs)} |")
        if name == "cinit":
            ok = (all(h["failed"] == 0 and h["replaced"] == h["n_before"] for h in hs)
                  and len(hs) == len(bs) and h_max - b_max <= 50)
            verdicts.append(
                f"Target (cinit, {n} worker{'s' if n > 1 else ''}: 0 failed requests, "
                f"max latency within 50 ms of the baseline's, every worker replaced): "
                f"{'**met**' if ok else '**missed**'}: "
                f"{', '.join(str(h['failed']) for h in hs)} failed, max {h_max:.1f} vs "
                f"{b_max:.1f} ms ({h_max - b_max:+.1f}), "
                f"{', '.join(str(h['replaced']) for h in hs)} of {n} replaced.  ")
    print()
    for v in verdicts:
        print(v)


# ---------------------------------------------------------------- main

def fmt_mib(kib):
    return "–" if kib is None else f"{kib / 1024:.1f}"


def main_table():
    uv = os.path.join(PYBIN, "uvicorn")
    gu = os.path.join(PYBIN, "gunicorn")
    servers = [
        ("cinit", lambda p: [INIT, "--workers", "2", "--listen", f"127.0.0.1:{p}",
                             "--", uv, "app.main:app", "--fd", "3",
                             "--no-access-log"]),
        ("gunicorn", lambda p: [gu, "-k", "uvicorn.workers.UvicornWorker", "-w", "2",
                                "-b", f"127.0.0.1:{p}", "app.main:app"]),
        ("uvicorn --workers", lambda p: [uv, "app.main:app", "--workers", "2",
                                         "--host", "127.0.0.1", "--port", str(p),
                                         "--no-access-log"]),
    ]
    res = []
    for name, argv in servers:
        port = free_port()
        res.append(measure(name, argv(port), port,
                           os.path.join(STATE, name.split()[0] + ".log")))

    c, g, u = res
    rows = [
        (f"Requests/s, median of {WRK_RUNS} × wrk " + " ".join(WRK_ARGS),
         lambda r: f"{r['rps']:,.0f}"),
        ("… each run", lambda r: ", ".join(f"{x[0]:,.0f}" for x in r["runs"])),
        ("… connections per worker in each run",
         lambda r: ", ".join("/".join(map(str, x[3])) for x in r["runs"])),
        ("p99 latency, ms (median of the runs)", lambda r: f"{r['p99_ms']:.1f}"),
        ("wrk errors", lambda r: "; ".join(r["wrk_problems"]) or "none"),
        ("Requests/s on 1 keep-alive connection (wrk -t1 -c1 -d3s)",
         lambda r: f"{r['c1_rps']:,.0f}"),
        ("p99 latency on 1 connection, ms", lambda r: f"{r['c1_p99_ms']:.1f}"),
        ("Processes in tree", lambda r: str(r["tree_n"])),
        ("Tree RSS, MiB (sum of VmRSS)", lambda r: fmt_mib(r["tree_rss"])),
        ("Tree PSS, MiB (sum of smaps_rollup Pss)", lambda r: fmt_mib(r["tree_pss"])),
        ("Manager RSS, MiB", lambda r: fmt_mib(r["mgr_rss"])),
        ("Manager PSS, MiB", lambda r: fmt_mib(r["mgr_pss"])),
        ("Worker RSS, MiB (each)", lambda r: " / ".join(fmt_mib(x) for x in r["worker_rss"])),
        ("Start → first answer, ms", lambda r: f"{r['startup_ms']:.0f}"),
        ("SIGKILLed worker → manager has a new child, ms (median of 3)",
         lambda r: f"{r['replace_fork_ms']:.0f}"),
        ("SIGKILLed worker → new pid answers, ms (median of 3)",
         lambda r: f"{r['replace_serve_ms']:.0f} ("
                   + ", ".join(f"{x:.0f}" for x in r["replace_serve_all"]) + ")"),
        ("SIGTERM → manager exit, ms", lambda r: f"{r['stop_ms']:.0f}"),
        ("Exit status after SIGTERM", lambda r: str(r["exit"]) + (
            "" if not r["leftover"] else
            f"; {r['leftover']} process outlived the manager by "
            + (f"{r['leftover_ms']:.0f} ms" if r["leftover_ms"] is not None else "> 3 s"))),
        (f"Manager idle wake-ups/s (ctxt switches, {IDLE_S:.0f} s)",
         lambda r: f"{r['mgr_wakeups']:.1f}"),
        ("Workers' idle wake-ups/s (both)", lambda r: f"{r['worker_wakeups']:.1f}"),
    ]
    print("| | cinit + `uvicorn --fd 3` | gunicorn + UvicornWorker | `uvicorn --workers` |")
    print("|---|---:|---:|---:|")
    for label, f in rows:
        print(f"| {label} | {f(c)} | {f(g)} | {f(u)} |")

    def verdict(ok):
        return "**met**" if ok else "**missed**"
    t1 = c["rps"] >= g["rps"]
    margin = g["tree_rss"] - c["tree_rss"]
    t2 = margin >= g["mgr_rss"]
    t3 = c["mgr_wakeups"] == 0
    print(f"| Target: throughput ≥ gunicorn's | {verdict(t1)}: "
          f"{c['rps']:,.0f} vs {g['rps']:,.0f} req/s ({(c['rps']/g['rps']-1)*100:+.0f} %) | | |")
    print(f"| Target: tree RSS below gunicorn's by ≥ its arbiter's RSS | {verdict(t2)}: "
          f"{margin/1024:.1f} MiB lower, arbiter {g['mgr_rss']/1024:.1f} MiB | | |")
    print(f"| Target: idle init, 2 idle workers: 0 wake-ups/s | {verdict(t3)}: "
          f"{c['mgr_wakeups']:.1f}/s | | |")


def main():
    if RELOAD not in ("0", "1", "only"):
        raise SystemExit(f"RELOAD={RELOAD!r}: expected 0, 1 or only")
    if RELOAD != "only":
        main_table()
    if RELOAD != "0":
        if RELOAD != "only":
            print()
        reload_table()


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    main()
