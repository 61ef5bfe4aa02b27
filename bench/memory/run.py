#!/usr/bin/env python3
"""One leaking FastAPI app, one memory limit, one load: several servers.

Called by bench/memory.sh (which installs, builds and cleans up); usage:

    run.py INIT_BINARY PYTHON_BIN_DIR APP_DIR STATE_DIR

Standard library only; needs root and a cgroup v1 memory hierarchy.
Each server runs, one after the other, in a memory cgroup of its own made
for it (under this process's own memory cgroup, named
cinit-bench-memory-PID-N, its path appended to STATE_DIR/cgroups so that
the shell trap can remove it if this script is killed) with the same hard
limit and no swap, and every process of its session is SIGKILLed and the
group removed when it is done with.

The app is examples/fastapi with APP_LEAK=1: GET /leak?mib=1 keeps 1 MiB
in the worker that answers. The load is bench/memory/load.py: requests at
a fixed rate whatever the server does (open loop), each on a new
connection, every LEAK_EVERY-th one GET /leak?mib=1 and the others GET
/items/5 (load.py says why not wrk). MIXES lists LEAK_EVERY:RATE pairs,
each run against every server; the default two leak the same 5 MiB/s, A
in small steps (1 request in 10 of 50 per second: 102 KiB per request on
average) and B in large ones (1 in 4 of 20 per second: 256 KiB). What a
worker keeps per request is what gunicorn's `--max-requests` has to be
sized for; the memory guard sees only memory.

Definitions (the same for every server):

* OOM kills: the cgroup's own `oom_kill` count (memory.oom_control), so
  an OOM kill counts whatever process it took and whoever noticed it.
* failed requests: requests without a complete 200 answer (refused,
  reset, closed without an answer, no answer within 10 s, another
  status), out of all sent.
* p99: the 99th percentile of the time from when a request was due to
  its answer's last byte, over the answered ones.
* peak memory: the cgroup's memory.max_usage_in_bytes over the load (what
  the limit is compared with: page cache included), and the highest
  working set (usage minus total_inactive_file, as the kubelet counts it)
  sampled every 100 ms.
* replaced: how many workers the manager replaced on purpose (cinit's
  `replaced (memory)` log lines, uvicorn's `Maximum request limit`
  lines under gunicorn), and the manager's own words on the kills.
"""

import os
import json
import re
import signal
import socket
import subprocess
import sys
import threading
import time

INIT, PYBIN, APP_DIR, STATE = sys.argv[1:5]
LIMIT_MIB = int(os.environ.get("LIMIT_MIB", "256"))
DURATION = int(os.environ.get("DURATION", "60"))
MIXES = [tuple(int(x) for x in m.split(":"))
         for m in os.environ.get("MIXES", "10:50 4:20").split()]
MAX_WORKER_MEMORY = os.environ.get("MAX_WORKER_MEMORY", "70MiB")
MAX_REQUESTS = int(os.environ.get("MAX_REQUESTS", "1000"))
MAX_REQUESTS_JITTER = int(os.environ.get("MAX_REQUESTS_JITTER", "100"))
V1 = "/sys/fs/cgroup/memory"


def log(msg):
    print(f"memory-bench: {msg}", file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------- cgroups

def own_memory_dir():
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            if "memory" in controllers.split(","):
                return V1 + path.rstrip("/")
    raise RuntimeError("no cgroup v1 memory hierarchy (this bench needs one)")


def read(path):
    with open(path) as f:
        return f.read()


def write(path, value):
    with open(path, "w") as f:
        f.write(str(value))


def stat_field(text, key):
    for line in text.splitlines():
        k, _, v = line.partition(" ")
        if k == key:
            return int(v)
    return None


class Group:
    """A memory cgroup with a hard limit and no swap, removed by close()."""

    seq = 0

    def __init__(self):
        Group.seq += 1
        self.dir = f"{own_memory_dir()}/cinit-bench-memory-{os.getpid()}-{Group.seq}"
        os.mkdir(self.dir)
        with open(os.path.join(STATE, "cgroups"), "a") as f:
            f.write(self.dir + "\n")
        limit = LIMIT_MIB << 20
        write(f"{self.dir}/memory.limit_in_bytes", limit)
        # Where swap is accounted, the same figure: the limit is the limit.
        if os.path.exists(f"{self.dir}/memory.memsw.limit_in_bytes"):
            write(f"{self.dir}/memory.memsw.limit_in_bytes", limit)
        write(f"{self.dir}/memory.swappiness", 0)

    def oom_kills(self):
        return stat_field(read(f"{self.dir}/memory.oom_control"), "oom_kill") or 0

    def working_set(self):
        usage = int(read(f"{self.dir}/memory.usage_in_bytes"))
        inactive = stat_field(read(f"{self.dir}/memory.stat"), "total_inactive_file") or 0
        return max(usage - inactive, 0)

    def peak(self):
        return int(read(f"{self.dir}/memory.max_usage_in_bytes"))

    def reset_peak(self):
        write(f"{self.dir}/memory.max_usage_in_bytes", 0)

    def close(self):
        home = own_memory_dir()
        t_end = time.monotonic() + 5
        while True:
            for pid in read(f"{self.dir}/cgroup.procs").split():
                try:
                    write(f"{home}/cgroup.procs", pid)
                except OSError:
                    pass
            try:
                os.rmdir(self.dir)
                return
            except FileNotFoundError:
                return
            except OSError:
                if time.monotonic() > t_end:
                    log(f"could not remove {self.dir}")
                    return
                time.sleep(0.05)


# ---------------------------------------------------------------- /proc

def stat_fields(pid):
    with open(f"/proc/{pid}/stat") as f:
        data = f.read()
    return data[data.rindex(")") + 2:].split()


def all_pids():
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def tree(pid):
    kids = {}
    for p in all_pids():
        try:
            kids.setdefault(int(stat_fields(p)[1]), []).append(p)
        except (OSError, ValueError):
            pass
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


def listen_inode(port):
    hexport = f"{port:04X}"
    with open("/proc/net/tcp") as f:
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
    return [p for p in tree(manager)[1:] if holds(p, inode)]


def get(port, path):
    """One request on a fresh connection: the status line, or None."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
            data = b""
            while chunk := s.recv(65536):
                data += chunk
    except OSError:
        return None
    return data.split(b"\r\n", 1)[0]


# ---------------------------------------------------------------- load

LOAD = os.path.join(os.path.dirname(os.path.abspath(__file__)), "load.py")


def load(port, every, rate):
    p = subprocess.run([sys.executable, LOAD, str(port), str(rate), str(every), str(DURATION)],
                       capture_output=True, text=True, timeout=DURATION + 60)
    if p.returncode != 0:
        raise RuntimeError(f"load.py failed: {p.stderr.strip()}")
    return json.loads(p.stdout)


# ---------------------------------------------------------------- one server

def kill_session(sid):
    for pid in session_pids(sid):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def measure(name, argv, port, every, rate):
    r = {"name": name, "argv": argv}
    group = Group()
    logpath = os.path.join(STATE, f"{Group.seq}-{name.split()[0]}.log")
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("CINIT_", "UVICORN_", "GUNICORN_"))
           and k not in ("WEB_CONCURRENCY", "LISTEN_FDS", "LISTEN_PID")}
    env["PATH"] = PYBIN + os.pathsep + env.get("PATH", "")
    env["APP_LEAK"] = "1"
    procs = f"{group.dir}/cgroup.procs"
    log(f"{name}: {' '.join(argv)}  (log: {logpath}; cgroup {group.dir}, "
        f"limit {LIMIT_MIB} MiB)")
    logf = open(logpath, "wb")
    proc = subprocess.Popen(
        argv, cwd=APP_DIR, env=env, stdin=subprocess.DEVNULL, stdout=logf,
        stderr=subprocess.STDOUT, start_new_session=True,
        # Into the group before exec: everything it starts is inside.
        preexec_fn=lambda: write(procs, os.getpid()))
    sid = proc.pid
    with open(os.path.join(STATE, "sids"), "a") as f:
        f.write(f"{sid}\n")
    try:
        t_end = time.monotonic() + 120
        while not (get(port, "/items/5") or b"").endswith(b"200 OK"):
            if proc.poll() is not None or time.monotonic() > t_end:
                raise RuntimeError(f"{name} did not serve (see {logpath})")
            time.sleep(0.05)
        while len(workers(proc.pid, port)) < 2:
            if time.monotonic() > t_end:
                raise RuntimeError(f"{name}: 2 workers never held the socket")
            time.sleep(0.05)
        time.sleep(1)
        ooms0 = group.oom_kills()
        group.reset_peak()
        peak_ws = [0]
        done = threading.Event()

        def sample():
            while not done.wait(0.1):
                try:
                    peak_ws[0] = max(peak_ws[0], group.working_set())
                except OSError:
                    pass
        sampler = threading.Thread(target=sample)
        sampler.start()
        log(f"{name}: {rate} requests/s for {DURATION}s, 1 in {every} leaking 1 MiB")
        try:
            w = load(port, every, rate)
        finally:
            done.set()
            sampler.join()
        r.update(w)
        r["oom_kills"] = group.oom_kills() - ooms0
        r["peak"] = group.peak()
        r["peak_ws"] = peak_ws[0]
        r["survived"] = proc.poll() is None
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pass
        logf.flush()
        text = open(logpath, errors="replace").read()
        r["log"] = text
        r["replaced"] = (len(re.findall(r"replaced \(memory\)", text))
                         + len(re.findall(r"Maximum request limit of \d+ exceeded", text)))
        r["oom_reported"] = (len(re.findall(r"killed by the kernel OOM killer", text))
                             + len(re.findall(r"SIGKILL! Perhaps out of memory\?", text)))
        log(f"{name}: {r['sent']} requests, failed {r['failed'] or 'none'}, "
            f"p99 {r['p99_ms']:.1f} ms, OOM kills {r['oom_kills']}, "
            f"peak {r['peak'] / 2**20:.0f} MiB, replaced {r['replaced']}")
        return r
    finally:
        kill_session(sid)
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        logf.close()
        group.close()


def main():
    uv = os.path.join(PYBIN, "uvicorn")
    gu = os.path.join(PYBIN, "gunicorn")
    uv_args = ["app.main:app", "--fd", "3", "--no-access-log"]
    servers = [
        ("cinit + guard", lambda p: [
            INIT, "--workers", "2", "--listen", f"127.0.0.1:{p}",
            "--max-worker-memory", MAX_WORKER_MEMORY, "--", uv, *uv_args]),
        ("gunicorn + --max-requests", lambda p: [
            gu, "-k", "uvicorn.workers.UvicornWorker", "-w", "2", "-b", f"127.0.0.1:{p}",
            "--max-requests", str(MAX_REQUESTS),
            "--max-requests-jitter", str(MAX_REQUESTS_JITTER), "app.main:app"]),
        ("neither (cinit, no guard)", lambda p: [
            INIT, "--workers", "2", "--listen", f"127.0.0.1:{p}", "--", uv, *uv_args]),
    ]
    results = []
    for i, (every, rate) in enumerate(MIXES):
        label = chr(ord("A") + i)
        mix = (f"Leak {label}: {rate} requests/s, 1 in {every} keeps 1 MiB "
               f"({rate / every:.1f} MiB/s, {1024 / every:.0f} KiB per request on average)")
        log(mix)
        res = []
        for name, argv in servers:
            port = free_port()
            res.append(measure(name, argv(port), port, every, rate))
        results.append((mix, res))

    def failed(r):
        n = sum(r["failed"].values())
        detail = ", ".join(f"{k} {v}" for k, v in r["failed"].items())
        return f"{n}" + (f" ({detail})" if detail else "")

    rows = [
        ("OOM kills (the cgroup's oom_kill)", lambda r: str(r["oom_kills"])),
        ("Failed requests", failed),
        ("Requests sent", lambda r: f"{r['sent']:,}"),
        ("p99 latency, ms", lambda r: f"{r['p99_ms']:.1f}"),
        ("Peak memory, MiB (max_usage_in_bytes)", lambda r: f"{r['peak'] / 2**20:.0f}"),
        ("Peak working set, MiB (sampled every 100 ms)",
         lambda r: f"{r['peak_ws'] / 2**20:.0f}"),
        ("Workers replaced on purpose", lambda r: str(r["replaced"])),
        ("OOM kills the manager's log reports", lambda r: str(r["oom_reported"])),
        ("Manager still running at the end", lambda r: "yes" if r["survived"] else "**no**"),
    ]
    names = [r["name"] for r in results[0][1]]
    print("| | " + " | ".join(names) + " |")
    print("|---|" + "---:|" * len(names))
    met = True
    for mix, res in results:
        print(f"| **{mix}** |" + " |" * len(res))
        for label, f in rows:
            print(f"| {label} | " + " | ".join(f(r) for r in res) + " |")
        c = res[0]
        met = met and c["oom_kills"] == 0 and not c["failed"]
    print("| Target: cinit 0 OOM kills and 0 failed requests in every mix | "
          + ("**met**" if met else "**missed**") + " |" + " |" * (len(names) - 1))


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    main()
