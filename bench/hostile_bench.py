"""Riders against one process: how many it holds before the cap, and ingest while they hammer.

Runs a real ``python -m server serve`` (SQLite on a temporary directory) on
loopback with a lowered descriptor limit, then:

1. idle: the p99 of telemetry POSTs (one agent, keep-alive) on a quiet server;
2. riders open ``/ws/public`` from many loopback addresses (127.0.0.0/8) until
   the server answers 1013: how many one process holds before the cap
   (descriptor limit minus FD_RESERVE, or PUBLIC_STREAMS_MAX), against that limit;
3. hammered: the same POSTs while every rider sends a subscribe message in a
   loop (reconnecting when closed with 1008 for it) and others keep
   reconnecting past the cap; p99 against the idle p99, with a limit of 2x
   (issue 14).

The riders run in a separate process (its own process group): the idle p99 is
taken with them connected but silent, so the ratio measures the server, not
the bench client's own event loop.

    .venv/bin/python bench/hostile_bench.py [--nofile 2048] [--posts 300]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import websockets

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from server.auth import hash_device_token, new_device_token  # noqa: E402
from server.store import open_store  # noqa: E402

PER_ADDRESS = 50
SUBSCRIBE = json.dumps({"type": "subscribe", "routes": ["1", "2"]})


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


async def seed(data_dir: Path) -> str:
    token = new_device_token()
    store = open_store(None, data_dir)
    await store.open()
    try:
        await store.add_device("bench-bus", hash_device_token(token))
    finally:
        await store.close()
    return token


async def ingest_p99(url: str, token: str, posts: int) -> float:
    timings: list[float] = []
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {token}"}) as client:
        for _ in range(posts):
            fix = {"t": datetime.now(UTC).isoformat(), "lat": 45.0, "lon": 9.0}
            started = time.perf_counter()
            r = await client.post(f"{url}/v1/telemetry/location", json={"fixes": [fix]})
            timings.append(time.perf_counter() - started)
            assert r.status_code == 200, r.text
    return p99(timings)


async def rider(port: int, n: int) -> Any:
    """An open public stream, or None when the server refused it (1013)."""
    sock = socket.create_connection(
        ("127.0.0.1", port), source_address=(f"127.1.{n // 250}.{n % 250 + 1}", 0)
    )
    sock.setblocking(False)
    try:
        ws = await websockets.connect(f"ws://127.0.0.1:{port}/ws/public", sock=sock)
    except (TimeoutError, OSError, websockets.InvalidHandshake):
        sock.close()
        return None  # an overloaded server counts as a refusal
    try:
        json.loads(await ws.recv())
        return ws
    except websockets.ConnectionClosed:
        return None


async def hammer(port: int, ws: Any, stop: asyncio.Event, n: int) -> int:
    """Subscribe in a loop; when the server closes the socket (1008), reconnect and go on."""
    closed = 0
    while not stop.is_set():
        with contextlib.suppress(websockets.ConnectionClosed):
            while not stop.is_set():
                # As fast as the socket takes them, without waiting for the answers
                # (which the server paces): what a hostile rider can send.
                await ws.send(SUBSCRIBE)
                await asyncio.sleep(0)
        if stop.is_set():
            break
        closed += 1
        ws = None
        while ws is None and not stop.is_set():
            ws = await rider(port, n)
    if ws is not None:
        await ws.close()
    return closed


async def knock(port: int, stop: asyncio.Event, start: int) -> int:
    """Riders past the cap, reconnecting as fast as they are turned away."""
    refused = 0
    n = start
    while not stop.is_set():
        ws = await rider(port, n)
        n += 1
        if ws is None:
            refused += 1
        else:
            await ws.close()
    return refused


async def riders_process(port: int) -> None:
    """The riders, in a process of their own: connect, idle until "go", hammer until "stop"."""
    loop = asyncio.get_running_loop()
    riders = []
    n = 0
    while True:
        ws = await rider(port, n)
        n += 1
        if ws is None:
            break
        riders.append(ws)
    print(f"held {len(riders)}", flush=True)
    await loop.run_in_executor(None, sys.stdin.readline)  # "go"
    stop = asyncio.Event()
    tasks = [asyncio.create_task(hammer(port, ws, stop, i)) for i, ws in enumerate(riders)]
    knockers = [asyncio.create_task(knock(port, stop, n + 10_000 * k)) for k in range(4)]
    await loop.run_in_executor(None, sys.stdin.readline)  # "stop"
    stop.set()
    refused = sum(await asyncio.gather(*knockers))
    closed = sum(
        r for r in await asyncio.gather(*tasks, return_exceptions=True) if isinstance(r, int)
    )
    print(f"refused {refused} closed {closed}", flush=True)


async def run(args: argparse.Namespace) -> None:
    data = Path(tempfile.mkdtemp(prefix="hostile-bench-"))
    token = await seed(data)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "BUSTRACKER_DATA_DIR": str(data),
        "LOG_LEVEL": "warning",
        "RATE_LIMIT_TELEMETRY": "1000000",
        "PUBLIC_STREAMS_PER_ADDRESS": str(PER_ADDRESS),
    }
    nofile = args.nofile

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

    proc = subprocess.Popen(
        [sys.executable, "-m", "server", "serve", "--port", str(port)],
        env=env, cwd=REPO, preexec_fn=limit, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    riders: subprocess.Popen[str] | None = None
    try:
        for _ in range(300):
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/health").status_code == 200:
                    break
            await asyncio.sleep(0.1)
        # The riders run in a process group of their own, so that the agent's timings
        # here are not the riders' event loop; the idle baseline runs with them
        # connected but silent, so the ratio is what their messages cost the server.
        riders = subprocess.Popen(
            [sys.executable, __file__, "--riders", str(port)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, start_new_session=True,
        )  # fmt: skip
        assert riders.stdin is not None and riders.stdout is not None
        held = int(riders.stdout.readline().split()[1])
        cap = nofile - 512  # FD_RESERVE's default
        print(f"riders held before the cap: {held} (cap {cap}: {held / cap:.2f}x)")
        idle = await ingest_p99(url, token, args.posts)
        riders.stdin.write("go\n")
        riders.stdin.flush()
        await asyncio.sleep(1.0)  # let the flood reach its pace
        loaded = await ingest_p99(url, token, args.posts)
        riders.stdin.write("stop\n")
        riders.stdin.flush()
        _, refused, _, closed = riders.stdout.readline().split()
        riders.wait(60)
        ratio = loaded / idle
        print(
            f"ingest p99: idle {idle * 1000:.1f} ms, riders hammering {loaded * 1000:.1f} ms"
            f" = {ratio:.2f}x idle (limit 2x: {'ok' if ratio <= 2 else 'OVER'});"
            f" {refused} reconnects refused, {closed} floods closed (1008) meanwhile"
        )
    finally:
        if riders is not None and riders.poll() is None:
            riders.kill()
        proc.send_signal(signal.SIGINT)
        proc.wait(20)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--nofile", type=int, default=2048)
    parser.add_argument("--posts", type=int, default=300)
    parser.add_argument("--riders", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    asyncio.run(riders_process(args.riders) if args.riders else run(args))


if __name__ == "__main__":
    main()
