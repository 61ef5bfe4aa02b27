#!/usr/bin/env python3
"""bench/status/client.py: times the control socket's and the metrics page's
answers, one request at a time, each on a new connection (as a client or a
scraper does).

Usage: client.py SOCKET METRICS_PORT RUNS
Prints one line per kind: NAME median_ms p95_ms max_ms bytes
"""
import json
import socket
import statistics
import sys
import time


def control(path, request):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)
    s.sendall((json.dumps(request) + "\n").encode())
    chunks = []
    while True:
        b = s.recv(65536)
        if not b:
            break
        chunks.append(b)
    s.close()
    data = b"".join(chunks)
    if not json.loads(data).get("ok"):
        raise SystemExit(f"error answer: {data[:200]!r}")
    return len(data)


def metrics(port):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
    chunks = []
    while True:
        b = s.recv(65536)
        if not b:
            break
        chunks.append(b)
    s.close()
    data = b"".join(chunks)
    if not data.startswith(b"HTTP/1.1 200"):
        raise SystemExit(f"bad answer: {data[:200]!r}")
    return len(data)


def timed(name, f, runs):
    f()  # warm-up
    times = []
    size = 0
    for _ in range(runs):
        t = time.perf_counter()
        size = f()
        times.append((time.perf_counter() - t) * 1000)
    times.sort()
    p95 = times[min(len(times) - 1, int(len(times) * 0.95))]
    print(f"{name} {statistics.median(times):.2f} {p95:.2f} {times[-1]:.2f} {size}")


def main():
    path, port, runs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    timed("status_json", lambda: control(path, {"version": 1, "command": "status"}), runs)
    timed(
        "status_text",
        lambda: control(path, {"version": 1, "command": "status", "format": "text"}),
        runs,
    )
    timed("ready", lambda: control(path, {"version": 1, "command": "ready"}), runs)
    timed("metrics", lambda: metrics(port), runs)


main()
