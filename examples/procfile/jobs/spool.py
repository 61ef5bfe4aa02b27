"""The queue: one JSON file per job in $JOBS_DIR (default /tmp/cinit-jobs).

new/ID.json -> taken/ID.json (renamed by the one worker that claims it)
-> done/ID.json (with its result). A rename is atomic, so two workers
never run one job."""

import json
import os
import uuid
from typing import Optional, Tuple

ROOT = os.environ.get("JOBS_DIR", "/tmp/cinit-jobs")
STATES = ("new", "taken", "done")


def _path(state: str, job_id: str) -> str:
    return os.path.join(ROOT, state, job_id + ".json")


def setup() -> None:
    for state in STATES:
        os.makedirs(os.path.join(ROOT, state), exist_ok=True)


def enqueue(kind: str, n: int) -> str:
    setup()
    job_id = uuid.uuid4().hex[:12]
    tmp = _path("new", job_id) + ".tmp"
    with open(tmp, "w") as f:
        json.dump({"id": job_id, "kind": kind, "n": n}, f)
    os.rename(tmp, _path("new", job_id))
    return job_id


def claim() -> Optional[Tuple[str, dict]]:
    """The oldest new job, now taken by this process; None when there is
    none."""
    setup()
    names = sorted(
        (e for e in os.scandir(os.path.join(ROOT, "new")) if e.name.endswith(".json")),
        key=lambda e: e.stat().st_mtime,
    )
    for entry in names:
        job_id = entry.name[: -len(".json")]
        try:
            os.rename(entry.path, _path("taken", job_id))
        except FileNotFoundError:
            continue  # another worker took it
        with open(_path("taken", job_id)) as f:
            return job_id, json.load(f)
    return None


def finish(job_id: str, job: dict, result: int) -> None:
    job["result"] = result
    tmp = _path("done", job_id) + ".tmp"
    with open(tmp, "w") as f:
        json.dump(job, f)
    os.rename(tmp, _path("done", job_id))
    os.remove(_path("taken", job_id))


def state(job_id: str) -> Optional[dict]:
    for s in reversed(STATES):
        try:
            with open(_path(s, job_id)) as f:
                job = json.load(f)
            job["state"] = s
            return job
        except FileNotFoundError:
            continue
    return None
