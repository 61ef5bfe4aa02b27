#!/usr/bin/env python3
"""Open-loop HTTP load at a fixed rate, one new connection per request.

Usage: load.py PORT RATE LEAK_EVERY DURATION_S

Request i is due at i / RATE seconds from the start, whether or not the
ones before it have been answered (so a server that stalls gets the same
requests, queued, and its stall shows in the latency instead of lowering
the rate). Every LEAK_EVERY-th request is GET /leak?mib=1, the others GET
/items/5?q=somequery. Each opens its own connection, sends at once and
reads the answer to the end (`Connection: close`), as a client or proxy
without connection reuse does: an idle connection that a stopping worker
closes before the client has sent anything is then not counted as a
failed request, which wrk's fixed-rate mode (Lua `delay`, which connects
first and waits before sending) would do, and wrk also sends twice as
often on a connection after such a reconnect.

Prints one JSON object: sent, ok, failed (by kind: connect, reset,
timeout, status NNN, ...), latency percentiles in ms (from when the
request was due to its last byte).
"""

import asyncio
import json
import sys
import time

PORT, RATE, LEAK_EVERY, DURATION = (int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]),
                                    float(sys.argv[4]))
TIMEOUT = 10.0
LEAK = "/leak?mib=1"
PLAIN = "/items/5?q=somequery"


async def one(path, due, lat, failed):
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", PORT), TIMEOUT)
        try:
            writer.write(f"GET {path} HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n"
                         .encode())
            data = await asyncio.wait_for(reader.read(), TIMEOUT)
        finally:
            writer.close()
    except ConnectionRefusedError:
        kind = "connect"
    except (ConnectionResetError, BrokenPipeError):
        kind = "reset"
    except asyncio.TimeoutError:
        kind = "timeout"
    except OSError as e:
        kind = type(e).__name__
    else:
        head = data.split(b"\r\n", 1)[0].split()
        if len(head) >= 2 and head[1] == b"200" and b"\r\n\r\n" in data:
            lat.append(time.monotonic() - due)
            return
        kind = f"status {head[1].decode()}" if len(head) >= 2 else "empty answer"
    failed[kind] = failed.get(kind, 0) + 1


async def main():
    lat, failed, tasks = [], {}, []
    start = time.monotonic()
    n = int(RATE * DURATION)
    for i in range(n):
        due = start + i / RATE
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        path = LEAK if (i + 1) % LEAK_EVERY == 0 else PLAIN
        tasks.append(asyncio.create_task(one(path, due, lat, failed)))
    await asyncio.gather(*tasks)
    lat.sort()

    def pct(p):
        return round(lat[min(len(lat) - 1, int(len(lat) * p / 100))] * 1e3, 2) if lat else None
    print(json.dumps({
        "sent": n, "ok": len(lat), "failed": failed,
        "p50_ms": pct(50), "p99_ms": pct(99), "max_ms": pct(100),
        "seconds": round(time.monotonic() - start, 2),
    }))


if __name__ == "__main__":
    asyncio.run(main())
