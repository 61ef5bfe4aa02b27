#!/usr/bin/env python3
"""Writes the seed inputs of every fuzz target into fuzz/corpus/TARGET/
from the repository's realistic inputs: the TOML blocks of the docs and
examples, the cgroup fixture trees under tests/fixtures/cgroup, the
documented CINIT_* values, URLs and control requests. Run from the
repository root; the fuzzers grow the corpora from there and
`cargo +nightly fuzz cmin TARGET` keeps them small.

Inputs with several arguments join them with a NUL byte
(cinit::fuzzing::split_input).
"""
import glob
import hashlib
import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "fuzz", "corpus")


def put(target, data):
    if isinstance(data, str):
        data = data.encode()
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    name = "seed-" + hashlib.sha1(data).hexdigest()[:16]
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def read(path):
    with open(path, "rb") as f:
        return f.read()


def docs():
    for p in sorted(glob.glob(os.path.join(ROOT, "docs", "*.md")) + [os.path.join(ROOT, "README.md")]):
        yield read(p).decode()


def fenced(lang):
    for text in docs():
        for m in re.finditer(r"```" + lang + r"[^\n]*\n(.*?)```", text, re.S):
            yield m.group(1)


# config_file: the TOML blocks of the docs and the example config.
for block in fenced("toml"):
    put("config_file", block)
for p in glob.glob(os.path.join(ROOT, "examples", "**", "*.toml"), recursive=True):
    put("config_file", read(p))

# env_value: every documented CINIT_NAME=value, and the values of the
# vocabulary under a few names.
values = ["20s", "1.5", "512m", "auto", "2", "0.0.0.0:80,unix:/run/app.sock",
          "tcp://db:5432", "app", "10001:10001", "SIGTERM", "TERM:INT,HUP:USR1",
          "on-failure", "json", "1", "off", "1h30m", "90%"]
for text in docs():
    for m in re.finditer(r"(CINIT_[A-Z_]+)=([^ `\"|\n]*)", text):
        put("env_value", m.group(1) + "\0" + m.group(2))
for name in ["CINIT_WORKERS", "CINIT_GRACEFUL_TIMEOUT", "CINIT_LISTEN", "CINIT_MEMORY",
             "CINIT_SIGNAL_MAP", "CINIT_RESTART", "CINIT_USER", "CINIT_WAIT_FOR", "WEB_CONCURRENCY"]:
    for v in values[:6]:
        put("env_value", name + "\0" + v)

# durations_and_sizes: the vocabulary's values.
for v in values + ["0", "1ms", "2.5s", "10GiB", "1e3", "RTMIN+3", "-1", "max", "yes", "1_000"]:
    put("durations_and_sizes", v)

# wait_target and listen_addr: the URLs and addresses of the docs.
for text in docs():
    for m in re.finditer(r"(?:tcp|http|https|unix)://[^ `\")\],;]+", text):
        put("wait_target", m.group(0))
for v in ["tcp://db:5432", "http://[::1]:8080/healthz?x=1", "unix:/run/app.sock", "db:5432"]:
    put("wait_target", v)
for v in [":8000", "0.0.0.0:80", "[::1]:8080", "unix:/run/app.sock", "tcp://127.0.0.1:8000",
          "fd://3", "unix:@abstract"]:
    put("listen_addr", v)

# user_db: passwd, group and a --user spec.
passwd = "root:x:0:0:root:/root:/bin/sh\napp:x:10001:10001:App:/home/app:/sbin/nologin\nnobody:x:65534:65534::/:\n"
group = "root:x:0:\napp:x:10001:\nwww:x:33:app,nobody\n"
for spec in ["app", "10001", "10001:10001", "app:www", "nobody", "root"]:
    put("user_db", passwd + "\0" + group + "\0" + spec)

# proc_self and cgroup_files: the cgroup fixture trees.
for tree in sorted(glob.glob(os.path.join(ROOT, "tests", "fixtures", "cgroup", "*", ""))):
    cg = os.path.join(tree, "proc", "self", "cgroup")
    mi = os.path.join(tree, "proc", "self", "mountinfo")
    if os.path.exists(cg) and os.path.exists(mi):
        put("proc_self", read(cg) + b"\0" + read(mi))
    for dirpath, _, files in os.walk(os.path.join(tree, "sys")):
        for f in files:
            if f == "cpu.cfs_quota_us" and "cpu.cfs_period_us" in files:
                put("cgroup_files", read(os.path.join(dirpath, f)) + b"\0"
                    + read(os.path.join(dirpath, "cpu.cfs_period_us")))
            elif f in ("cpu.max", "memory.max", "memory.high", "memory.limit_in_bytes",
                       "memory.stat", "cpuset.cpus", "cpuset.cpus.effective",
                       "cpuset.effective_cpus"):
                put("cgroup_files", read(os.path.join(dirpath, f)))
    mem = os.path.join(tree, "proc", "meminfo")
    if os.path.exists(mem):
        put("cgroup_files", read(mem))

# procfile: the example Procfile and the docs' Procfile blocks.
for p in glob.glob(os.path.join(ROOT, "examples", "**", "Procfile"), recursive=True):
    put("procfile", read(p))
for text in docs():
    for m in re.finditer(r"```[^\n]*Procfile[^\n]*\n(.*?)```", text, re.S):
        put("procfile", m.group(1))
put("procfile", "web: gunicorn app:app --bind 0.0.0.0:$PORT\nworker: python3 -m worker 'a b'\n")

# control_request: the documented request lines.
for text in docs():
    for m in re.finditer(r'\{"version":1,"command"[^}\n]*\}', text):
        put("control_request", m.group(0))
for v in ['{"version":1,"command":"scale","by":-1,"program":"web"}',
          '{"version":1,"command":"reload","program":"queue"}',
          ' {"command":"status","format":"json","x":[1,{"y":null}],"s":"\\u00e9\\n"} ']:
    put("control_request", v)

# config_file, more: a file with most keys, and programs with steps.
put("config_file", """command = ["uvicorn", "app:app", "--fd", "3"]
workers = "auto"
cpus = 1.5
memory = "512MiB"
workers_per_cpu = 2
extra_workers = 1
worker_memory = "120MB"
memory_reserve = "64MiB"
min_workers = 1
max_workers = 8
listen = [":8000", "unix:/run/app.sock"]
backlog = 1024
socket_mode = "0660"
socket_owner = "app:www"
wait_timeout = "30s"
prestart_timeout = "5m"
user = "app"
no_new_privs = true
restart = "on-failure"
min_uptime = "2s"
backoff_max = "1m"
crash_loop = 5
ready = "listen"
ready_timeout = "20s"
watchdog = "10s"
stop_signal = "INT"
graceful_timeout = "30s"
max_worker_memory = "300MiB"
max_worker_age = "6h"
max_worker_age_jitter = "10%"
memory_high = "90%"
memory_interval = "1s"
shutdown_delay = "5s"
signal_map = ["HUP:USR1", "USR2:0"]
log_format = "json"
log_prefix = "auto"
metrics = "127.0.0.1:9100"
steps = [
  { wait_for = "tcp://db:5432", timeout = "60s" },
  { run = "alembic upgrade head", timeout = "5m" },
]
""")
put("config_file", """listen = ["tcp://127.0.0.1:8000"]
[programs.web]
command = "uvicorn app:app --fd 3"
workers = "auto"
[programs.worker]
command = ["python3", "-m", "worker"]
after = ["web"]
critical = false
memory = "300MiB"
stop_signal = "INT"
graceful_timeout = "20s"
restart = "always"
user = "app"
""")
