"""The web program: FastAPI on the socket cinit binds (fd 3).

    POST /jobs?n=1000   enqueue a job (the sum of the squares below n)
    GET  /jobs/{id}     {"state": "new" | "taken" | "done", "result": ...}
    GET  /healthz       ok
"""

import os

from fastapi import FastAPI, HTTPException
from fastapi.responses import PlainTextResponse

from . import spool

app = FastAPI()


@app.post("/jobs")
def create(n: int = 1000):
    if not 0 <= n <= 10_000_000:
        raise HTTPException(status_code=422, detail="n must be 0..10000000")
    job_id = spool.enqueue("api", n)
    print(f"enqueued job {job_id} (n={n})", flush=True)
    return {"id": job_id, "worker": os.environ.get("CINIT_WORKER_ID")}


@app.get("/jobs/{job_id}")
def read(job_id: str):
    job = spool.state(job_id)
    if job is None:
        raise HTTPException(status_code=404, detail="no such job")
    return job


@app.get("/healthz", response_class=PlainTextResponse)
def healthz():
    return "ok"
