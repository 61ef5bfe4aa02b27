"""Drive a command on a pseudo-terminal, as a person at a keyboard would.

Usage: pty_run.py SCRIPT_JSON -- COMMAND [ARG]...

SCRIPT_JSON is a list of steps, run in order:
  ["expect", TEXT, SECS]   wait until TEXT has appeared in the output since
                           the previous expect (fails the step after SECS)
  ["send", TEXT]           type TEXT ("\u001a" is Ctrl-Z, "\u0003" Ctrl-C)
  ["poll", ARGV, REGEX, SECS]
                           run ARGV (a list) every 100 ms until its output
                           matches REGEX, up to SECS; the script goes on
                           either way (the result says which)
  ["exit", SECS]           wait up to SECS for the command to exit

Prints one JSON object: {"steps": [true|false, ...], "exit": CODE or null,
"output": TEXT}. A step that fails ends the script; a command still running
at the end is killed (SIGKILL to its process group) and "exit" is null.
Every wait is bounded; nothing sleeps for a fixed time.
"""

import json
import os
import pty
import re
import select
import subprocess
import signal
import sys
import time


def main():
    script = json.loads(sys.argv[1])
    argv = sys.argv[sys.argv.index("--") + 1:]
    pid, fd = pty.fork()
    if pid == 0:
        os.execvp(argv[0], argv)
    out = bytearray()
    seen = 0  # output consumed by expects
    status = None

    def pump(deadline):
        """Reads what is there until the deadline; False once the pty closed."""
        nonlocal status
        left = max(0.0, deadline - time.monotonic())
        ready, _, _ = select.select([fd], [], [], min(left, 0.1))
        if ready:
            try:
                data = os.read(fd, 4096)
            except OSError:
                data = b""
            if not data:
                return False
            out.extend(data)
        if status is None:
            p, st = os.waitpid(pid, os.WNOHANG)
            if p == pid:
                status = st
        return True

    results = []
    for step in script:
        kind = step[0]
        ok = False
        if kind == "expect":
            text, deadline = step[1].encode(), time.monotonic() + step[2]
            while time.monotonic() < deadline:
                at = out.find(text, seen)
                if at >= 0:
                    seen = at + len(text)
                    ok = True
                    break
                if not pump(deadline) and out.find(text, seen) < 0:
                    break
        elif kind == "send":
            os.write(fd, step[1].encode())
            ok = True
        elif kind == "poll":
            argv_, regex, deadline = step[1], re.compile(step[2], re.M), time.monotonic() + step[3]
            while time.monotonic() < deadline:
                pump(time.monotonic() + 0.1)
                try:
                    text = subprocess.run(argv_, capture_output=True, text=True,
                                          timeout=max(0.1, deadline - time.monotonic())).stdout
                except subprocess.TimeoutExpired:
                    break
                if regex.search(text):
                    ok = True
                    break
            results.append(ok)
            continue
        elif kind == "exit":
            deadline = time.monotonic() + step[1]
            while status is None and time.monotonic() < deadline:
                if not pump(deadline) and status is None:
                    # The pty closed: the command is exiting; poll for it.
                    time.sleep(0.02)
                    p, st = os.waitpid(pid, os.WNOHANG)
                    if p == pid:
                        status = st
            ok = status is not None
        results.append(ok)
        if not ok:
            break

    code = None
    if status is None:
        try:
            os.killpg(pid, signal.SIGKILL)
        except OSError:
            pass
        os.waitpid(pid, 0)
    else:
        code = os.waitstatus_to_exitcode(status)
    # Whatever is left in the pty buffer.
    while True:
        ready, _, _ = select.select([fd], [], [], 0)
        if not ready:
            break
        try:
            data = os.read(fd, 4096)
        except OSError:
            break
        if not data:
            break
        out.extend(data)
    print(json.dumps({"steps": results, "exit": code,
                      "output": out.decode("utf-8", "replace")}))


if __name__ == "__main__":
    main()
