"""The clock program: enqueues a job every CLOCK_INTERVAL seconds
(default 60), as a cron-like scheduler would. It is the first stopped."""

import os
import signal
import sys
import time

from . import spool


def main() -> None:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    interval = float(os.environ.get("CLOCK_INTERVAL") or 60)
    print(f"clock: a job every {interval:g} s", flush=True)
    while True:
        time.sleep(interval)
        job_id = spool.enqueue("clock", 100)
        print(f"enqueued scheduled job {job_id}", flush=True)


if __name__ == "__main__":
    main()
