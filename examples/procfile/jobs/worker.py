"""The worker program: runs the queued jobs one at a time.

SIGTERM (cinit's stop signal) lets the job in hand finish, then the
worker exits 0; cinit stops it before the web program, after the clock.
JOB_SECONDS (default 0) makes each job take that long, to watch a stop
wait for it."""

import os
import signal
import time

from . import spool

stopping = False


def on_term(signum, frame):
    global stopping
    stopping = True


def main() -> None:
    signal.signal(signal.SIGTERM, on_term)
    pause = float(os.environ.get("JOB_SECONDS") or 0)
    print(f"worker {os.environ.get('CINIT_WORKER_ID')} waiting for jobs in {spool.ROOT}", flush=True)
    while not stopping:
        got = spool.claim()
        if got is None:
            time.sleep(0.1)
            continue
        job_id, job = got
        started = time.monotonic()
        result = sum(i * i for i in range(int(job["n"])))
        if pause:
            time.sleep(pause)
        spool.finish(job_id, job, result)
        ms = (time.monotonic() - started) * 1000
        print(f"job {job_id} ({job['kind']}) done in {ms:.0f} ms", flush=True)
    print("SIGTERM: no job in hand, exiting", flush=True)


if __name__ == "__main__":
    main()
