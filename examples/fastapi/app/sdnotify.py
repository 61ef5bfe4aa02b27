"""sd_notify from the standard library: READY=1 and the watchdog.

Optional. cinit sees a uvicorn worker as ready on its own (`--ready
listen`: uvicorn takes the socket only once the lifespan startup ran), but
an app can say so itself (`--ready notify`), and with `--watchdog` it must
feed the watchdog or be replaced as hung. cinit passes NOTIFY_SOCKET (and,
with --watchdog, WATCHDOG_USEC) to every worker; without them this does
nothing, so the app runs the same anywhere.

    from contextlib import asynccontextmanager
    from . import sdnotify

    @asynccontextmanager
    async def lifespan(app):
        ...  # load the model, open the pools
        sdnotify.ready()
        task = sdnotify.start_watchdog()   # None without --watchdog
        yield
        sdnotify.notify("STOPPING=1")
"""

import asyncio
import os
import socket


def notify(message: str) -> bool:
    """Sends one datagram to NOTIFY_SOCKET; False when there is none."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]  # the abstract namespace
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.sendto(message.encode(), address)
    return True


def ready(status: str = "") -> bool:
    return notify("READY=1" + (f"\nSTATUS={status}" if status else ""))


def start_watchdog():
    """Pings WATCHDOG=1 from the event loop at half the interval, so a
    blocked loop stops the pings and cinit replaces the worker."""
    usec = os.environ.get("WATCHDOG_USEC")
    if not usec:
        return None
    interval = int(usec) / 1e6 / 2

    async def ping():
        while True:
            notify("WATCHDOG=1")
            await asyncio.sleep(interval)

    return asyncio.get_running_loop().create_task(ping())
