"""The FastAPI seed app of cinit's examples.

Run it the way the old uvicorn-gunicorn images did, with cinit as PID 1
binding the port once and N uvicorn workers sharing it:

    init --listen 0.0.0.0:80 --workers auto -- uvicorn app.main:app --fd 3

Settings for tests and benchmarks (all off by default):
    APP_STARTUP_DELAY=S   the lifespan startup takes S seconds (a model
                          load): the worker serves only after it
    APP_NOTIFY=1          send READY=1 (and feed the watchdog) through
                          app/sdnotify.py, the sd_notify snippet
    APP_LEAK=1            GET /leak keeps MiB it is asked for (?mib=N,
                          default 1): a worker that grows

Routes:
    GET /                 {"Hello": "World"}
    GET /items/{item_id}  {"item_id": 5, "q": "somequery"}  (q optional)
    GET /healthz          ok  (text/plain)
    GET /pid              {"pid": 1234, "worker": 0, "workers": 2}: which
                          worker answered (CINIT_WORKER_ID / CINIT_WORKERS,
                          null when unset), the same keys as cinit-demo.
    GET /block            blocks the event loop forever (a hung worker)
    GET /leak             with APP_LEAK=1: keeps memory (see above)
"""

import asyncio
import os
import time
from contextlib import asynccontextmanager
from typing import Optional, Union

from fastapi import FastAPI, HTTPException
from fastapi.responses import PlainTextResponse

from . import sdnotify


@asynccontextmanager
async def lifespan(app: FastAPI):
    delay = float(os.environ.get("APP_STARTUP_DELAY") or 0)
    if delay > 0:
        await asyncio.sleep(delay)
    watchdog = None
    if os.environ.get("APP_NOTIFY") == "1":
        sdnotify.ready(f"worker {os.environ.get('CINIT_WORKER_ID', '-')} serving")
        watchdog = sdnotify.start_watchdog()
    yield
    if watchdog is not None:
        watchdog.cancel()
    sdnotify.notify("STOPPING=1")


app = FastAPI(lifespan=lifespan)
_kept: list = []


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


@app.get("/block")
async def block():
    # A bug that blocks the event loop: no request, no ping, ever again.
    while True:
        time.sleep(3600)


@app.get("/leak")
async def leak(mib: int = 1):
    if os.environ.get("APP_LEAK") != "1":
        raise HTTPException(status_code=404)
    _kept.append(bytearray(mib << 20))
    return {"kept_mib": sum(len(b) for b in _kept) >> 20}
