#!/usr/bin/env python3
"""Run three programs under each manager in turn and measure the manager.

Called by bench/programs.sh (which installs, builds and cleans up); usage:

    run.py ROUNDS IDLE_SECS WORKDIR DEMO BINDEXEC MANAGER=ARG...

MANAGER is cinit (ARG: the init binary), supervisord (ARG: the
supervisord executable) or honcho (ARG: the python interpreter that has
honcho). Prints the markdown table on stdout, progress on stderr.
Standard library only; every measurement reads /proc.

The scenario, the same for every manager: `web`, two `cinit-demo serve`
processes on one TCP port of 127.0.0.1, and two programs `worker` and
`clock`, each one `cinit-demo sleep`. Each manager runs as PID 1 of its
own pid namespace (`unshare --pid --fork --kill-child --mount-proc`), as
in a container, with its children's output relayed to its own stdout:

* cinit: `init --procfile P --listen 127.0.0.1:PORT --workers 2`
  (Procfile: web/worker/clock, no `after`: all start at once, like the
  others), control socket in WORKDIR;
* supervisord: `supervisord -n -c C`, web as an [fcgi-program] with
  `socket=tcp://127.0.0.1:PORT` and numprocs=2 (supervisord binds the
  socket and hands it to both processes as fd 0: `serve --fd 0`), worker
  and clock as [program]s, stdout_logfile=/dev/stdout;
* honcho: `python -m honcho start -f P -c web=2`. honcho passes no
  socket, so each web process binds the port itself (bindexec: SO_REUSEPORT
  on fd 3, then exec `cinit-demo serve --fd 3`).

Definitions:

* programs: the descendants of the manager whose comm is `cinit-demo`
  (four: 2 web, worker, clock); manager side: every other process of the
  manager's tree, the manager included (honcho forks one Python helper per
  program process; a /bin/sh that has not exec'd would count here too).
* start → web answers: from just before the fork of unshare to the first
  complete `HTTP/1.1 200` answer to GET / on a new connection, tried every
  1 ms while the port refuses; start → 4 programs up: until the tree holds
  the four programs (past their exec).
* memory, 3 s after both (once cinit counts worker and clock ready, after
  its --min-uptime of 2 s, and supervisord counts every program RUNNING,
  after its startsecs of 1 s: no start-up timer is left): VmRSS (/proc/PID/status) and Pss
  (/proc/PID/smaps_rollup) of the manager process; Pss summed over the
  manager side; processes and threads of the manager side.
* idle wake-ups: voluntary + involuntary context switches of every thread
  of the manager side over IDLE_SECS, after the memory sample.
* stop: SIGTERM to the manager; TERM → programs gone: until none of the
  four is alive (gone or a zombie); TERM → manager exit: until unshare
  returns (the manager has exited; as PID 1 its exit also ends whatever
  was left in the namespace). The manager's exit status is shown.

Each round runs every manager once, the order rotating per round; the table
gives the median of ROUNDS rounds, and for the times also the smallest and
the largest (from 3 rounds on).
"""

import os
import signal
import socket
import statistics
import subprocess
import sys
import time

ROUNDS, IDLE, WORK, DEMO, BINDEXEC = (
    int(sys.argv[1]),
    float(sys.argv[2]),
    sys.argv[3],
    sys.argv[4],
    sys.argv[5],
)
MANAGERS = [a.split("=", 1) for a in sys.argv[6:]]
HOST = "127.0.0.1"
PROGRAMS = 4
DEADLINE = 30.0


def log(msg):
    print(f"[programs] {msg}", file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def read(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


def children(pid):
    out = []
    for t in os.listdir(f"/proc/{pid}/task") if os.path.isdir(f"/proc/{pid}/task") else []:
        c = read(f"/proc/{pid}/task/{t}/children")
        if c:
            out += [int(x) for x in c.split()]
    return out


def tree(pid):
    """pid and all its descendants."""
    todo, seen = [pid], []
    while todo:
        p = todo.pop()
        seen.append(p)
        todo += children(p)
    return seen


def comm(pid):
    c = read(f"/proc/{pid}/comm")
    return c.strip() if c else None


def state(pid):
    s = read(f"/proc/{pid}/stat")
    return s.rsplit(")", 1)[1].split()[0] if s else None


def alive(pid):
    return state(pid) not in (None, "Z", "X")


def field_kb(path, key):
    text = read(path)
    for line in (text or "").splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def ctxt(pid):
    n = 0
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return 0
    for t in tasks:
        for line in (read(f"/proc/{pid}/task/{t}/status") or "").splitlines():
            if "ctxt_switches" in line:
                n += int(line.split()[1])
    return n


def http_ok(port):
    try:
        with socket.create_connection((HOST, port), timeout=2) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            data = b""
            while True:
                b = s.recv(4096)
                if not b:
                    break
                data += b
            return data.startswith(b"HTTP/1.1 200")
    except OSError:
        return False


def command(kind, arg, port, n):
    """The manager's command line for run n, writing its files."""
    d = os.path.join(WORK, f"{kind}.{n}")
    os.makedirs(d, exist_ok=True)
    if kind == "cinit":
        with open(f"{d}/Procfile", "w") as f:
            f.write(f"web: {DEMO} serve\nworker: {DEMO} sleep\nclock: {DEMO} sleep\n")
        return [arg, "--procfile", f"{d}/Procfile", "--listen", f"{HOST}:{port}",
                "--workers", "2", "--control", f"{d}/cinit.sock"], d
    if kind == "supervisord":
        out = "stdout_logfile=/dev/stdout\nstdout_logfile_maxbytes=0\nredirect_stderr=true\n"
        with open(f"{d}/supervisord.conf", "w") as f:
            f.write(
                f"[supervisord]\nnodaemon=true\nuser=root\nlogfile={d}/supervisord.log\n"
                f"pidfile={d}/supervisord.pid\nchildlogdir={d}\n\n"
                f"[fcgi-program:web]\nsocket=tcp://{HOST}:{port}\n"
                f"command={DEMO} serve --fd 0\nnumprocs=2\n"
                f"process_name=%(program_name)s_%(process_num)d\n{out}\n"
                f"[program:worker]\ncommand={DEMO} sleep\n{out}\n"
                f"[program:clock]\ncommand={DEMO} sleep\n{out}"
            )
        return [arg, "-n", "-c", f"{d}/supervisord.conf"], d
    if kind == "honcho":
        with open(f"{d}/Procfile", "w") as f:
            f.write(f"web: {BINDEXEC} {HOST}:{port} {DEMO} serve --fd 3\n"
                    f"worker: {DEMO} sleep\nclock: {DEMO} sleep\n")
        return [arg, "-m", "honcho", "start", "-f", f"{d}/Procfile", "-d", d,
                "-c", "web=2"], d
    raise SystemExit(f"unknown manager {kind}")


def one(kind, arg, n):
    port = free_port()
    cmd, d = command(kind, arg, port, n)
    logf = open(f"{d}/out.log", "wb")
    r = {}
    t0 = time.monotonic()
    u = subprocess.Popen(
        ["unshare", "--pid", "--fork", "--kill-child", "--mount-proc"] + cmd,
        stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
        cwd=d, start_new_session=True,
    )
    try:
        mgr = None
        t_http = t_up = None
        while t_http is None or t_up is None:
            now = time.monotonic()
            if now - t0 > DEADLINE or u.poll() is not None:
                raise RuntimeError(f"{kind}: not up after {now - t0:.1f} s "
                                   f"(http {t_http}, programs {t_up}); see {d}/out.log")
            if mgr is None:
                c = children(u.pid)
                mgr = c[0] if c else None
            if mgr is not None and t_up is None:
                if sum(1 for p in tree(mgr)[1:] if comm(p) == "cinit-demo") >= PROGRAMS:
                    t_up = time.monotonic()
            if t_http is None and http_ok(port):
                t_http = time.monotonic()
            time.sleep(0.001)
        r["http"] = (t_http - t0) * 1000
        r["up"] = (t_up - t0) * 1000
        time.sleep(3)
        all_pids = tree(mgr)
        progs = [p for p in all_pids if comm(p) == "cinit-demo"]
        side = [p for p in all_pids if p not in progs]
        if len(progs) != PROGRAMS:
            raise RuntimeError(f"{kind}: {len(progs)} programs, expected {PROGRAMS}")
        r["rss"] = field_kb(f"/proc/{mgr}/status", "VmRSS")
        r["pss"] = field_kb(f"/proc/{mgr}/smaps_rollup", "Pss")
        r["side_pss"] = sum(field_kb(f"/proc/{p}/smaps_rollup", "Pss") for p in side)
        r["procs"] = len(side)
        r["threads"] = sum(field_kb(f"/proc/{p}/status", "Threads") for p in side)
        c0 = {p: ctxt(p) for p in side}
        time.sleep(IDLE)
        r["wake"] = sum(ctxt(p) - c0[p] for p in side if alive(p)) / IDLE
        # stop
        t1 = time.monotonic()
        os.kill(mgr, signal.SIGTERM)
        t_gone = None
        while u.poll() is None:
            now = time.monotonic()
            if t_gone is None and not any(alive(p) for p in progs):
                t_gone = now
            if now - t1 > DEADLINE:
                raise RuntimeError(f"{kind}: still running {DEADLINE} s after SIGTERM")
            time.sleep(0.001)
        t_exit = time.monotonic()
        r["gone"] = ((t_gone or t_exit) - t1) * 1000
        r["exit"] = (t_exit - t1) * 1000
        rc = u.returncode
        r["status"] = f"signal {-rc}" if rc < 0 else str(rc)
        return r
    finally:
        if u.poll() is None:
            try:
                os.killpg(u.pid, signal.SIGKILL)
            except OSError:
                pass
            u.wait()
        logf.close()


def main():
    results = {k: [] for k, _ in MANAGERS}
    for n in range(ROUNDS):
        order = MANAGERS[n % len(MANAGERS):] + MANAGERS[:n % len(MANAGERS)]
        for kind, arg in order:
            r = one(kind, arg, n)
            log(f"round {n + 1}/{ROUNDS} {kind}: " +
                ", ".join(f"{k} {v:.1f}" if isinstance(v, float) else f"{k} {v}"
                          for k, v in r.items()))
            results[kind].append(r)

    def med(kind, key, fmt):
        vals = [r[key] for r in results[kind]]
        return fmt.format(statistics.median(vals))

    def spread(kind, key):
        vals = [r[key] for r in results[kind]]
        if len(vals) < 3:
            return med(kind, key, "{:.1f}")
        return f"{statistics.median(vals):.1f} ({min(vals):.1f}–{max(vals):.1f})"

    def status(kind):
        seen = sorted({r["status"] for r in results[kind]})
        return " / ".join(seen)

    names = [k for k, _ in MANAGERS]
    head = {"cinit": "**cinit**"}
    rows = [
        ("Manager side: processes / threads",
         lambda k: med(k, "procs", "{:.0f}") + " / " + med(k, "threads", "{:.0f}")),
        ("Manager process: VmRSS / Pss, kB",
         lambda k: med(k, "rss", "{:.0f}") + " / " + med(k, "pss", "{:.0f}")),
        ("Manager side: Pss summed, kB", lambda k: med(k, "side_pss", "{:.0f}")),
        (f"Idle wake-ups /s (manager side, over {IDLE:g} s)", lambda k: med(k, "wake", "{:.1f}")),
        ("Start → web answers HTTP, ms: median (min–max)", lambda k: spread(k, "http")),
        ("Start → 4 programs up, ms", lambda k: spread(k, "up")),
        ("SIGTERM → programs gone, ms", lambda k: spread(k, "gone")),
        ("SIGTERM → manager exit, ms", lambda k: spread(k, "exit")),
        ("Manager's exit status", status),
    ]
    print(f"| median of {ROUNDS} rounds | " + " | ".join(head.get(k, k) for k in names) + " |")
    print("|---" * (len(names) + 1) + "|")
    for label, f in rows:
        print(f"| {label} | " + " | ".join(f(k) for k in names) + " |")


if __name__ == "__main__":
    main()
