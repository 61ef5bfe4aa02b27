"""The FastAPI seed app of cinit's examples.

Run it the way the old uvicorn-gunicorn images did, with cinit as PID 1
binding the port once and N uvicorn workers sharing it:

    init --listen 0.0.0.0:80 --workers auto -- uvicorn app.main:app --fd 3

Routes:
    GET /                 {"Hello": "World"}
    GET /items/{item_id}  {"item_id": 5, "q": "somequery"}  (q optional)
    GET /healthz          ok  (text/plain)
    GET /pid              {"pid": 1234, "worker": 0, "workers": 2}: which
                          worker answered (CINIT_WORKER_ID / CINIT_WORKERS,
                          null when unset), the same keys as cinit-demo.
"""

import os
from typing import Optional, Union

from fastapi import FastAPI
from fastapi.responses import PlainTextResponse

app = FastAPI()


def _env_int(name: str) -> Optional[int]:
    value = os.environ.get(name)
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


@app.get("/")
async def read_root():
    return {"Hello": "World"}


@app.get("/items/{item_id}")
async def read_item(item_id: int, q: Union[str, None] = None):
    return {"item_id": item_id, "q": q}


@app.get("/healthz", response_class=PlainTextResponse)
async def healthz():
    return "ok"


@app.get("/pid")
async def pid():
    return {
        "pid": os.getpid(),
        "worker": _env_int("CINIT_WORKER_ID"),
        "workers": _env_int("CINIT_WORKERS"),
    }
