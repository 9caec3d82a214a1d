"""Riders against one process: how many it holds before the cap, and ingest while they hammer.

Runs a real ``python -m server serve`` (SQLite on a temporary directory) on
loopback with a lowered descriptor limit, then:

1. riders open ``/ws/public`` from many loopback addresses (127.0.0.0/8) until
   the server answers 1013: how many one process holds before the cap
   (descriptor limit minus FD_RESERVE, or PUBLIC_STREAMS_MAX), against that limit;
2. rounds of: the p99 of telemetry POSTs (one agent, keep-alive) with the riders
   connected but silent (idle), then the same POSTs while every rider sends
   subscribe messages as fast as its socket takes them and 32 more
   (``--knockers``) reconnect in a loop past the cap, each from an address of
   its own (hammered); each
   round's p99 against its idle p99, with a limit of 2x (issue 14), and the
   median over the rounds.

``--nginx`` puts ``deploy/nginx.conf`` (TLS, its limits) in front, as the
compose stack does, and sends the agent and the riders through it.

The riders are other people's machines in real life. Here they run in a
process of their own (its own process group) at the lowest priority and, on a
machine with two cores or more, on another core than the server, with nginx
when there is one. The agent's timer runs on the server's core, where it only
waits for the server: on the riders' core the kernel's work for their traffic
delayed every request by some 4 ms, an empty one as much as ingest. So the
ratio measures what the riders cost the server, not what the bench's clients
cost the box; the same ratio for ``/health`` (which does nothing) is printed
beside it. ``--no-pin`` leaves scheduling to the kernel.

    .venv/bin/python bench/hostile_bench.py [--nofile 2048] [--posts 1000] [--rounds 3] [--nginx]
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
import ssl
import statistics
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

from bench.live_bench import cpu_seconds, free_port, pct, rss_bytes  # noqa: E402
from server.auth import hash_device_token, new_device_token  # noqa: E402
from server.store import open_store  # noqa: E402

PER_ADDRESS = 50
SUBSCRIBE = json.dumps({"type": "subscribe", "routes": ["1", "2"]})


async def seed(data_dir: Path) -> str:
    token = new_device_token()
    store = open_store(None, data_dir)
    await store.open()
    try:
        await store.add_device("bench-bus", hash_device_token(token))
    finally:
        await store.close()
    return token


async def p99_of(url: str, requests: int, tls: ssl.SSLContext | None, token: str = "") -> float:
    """The p99 of an agent's telemetry POSTs (one fix each, keep-alive), or without a token
    of ``GET /health``, which does nothing: what any request costs on this box."""
    timings: list[float] = []
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with httpx.AsyncClient(headers=headers, verify=tls or True) as client:
        for _ in range(requests):
            started = time.perf_counter()
            if token:
                fix = {"t": datetime.now(UTC).isoformat(), "lat": 45.0, "lon": 9.0}
                r = await client.post(f"{url}/v1/telemetry/location", json={"fixes": [fix]})
            else:
                r = await client.get(f"{url}/health")
            timings.append(time.perf_counter() - started)
            assert r.status_code == 200, r.text
    return pct(timings, 0.99)


def address(n: int) -> str:
    """The n-th rider's own loopback address (all of 127.0.0.0/8 is this machine's)."""
    return f"127.{1 + n // 62_500 % 250}.{n // 250 % 250}.{n % 250 + 1}"


async def rider(port: int, n: int, tls: ssl.SSLContext | None) -> Any:
    """An open public stream, or None when refused (1013 from the server, 429/503 from nginx)."""
    sock = socket.create_connection(("127.0.0.1", port), source_address=(address(n), 0))
    sock.setblocking(False)
    scheme, host = ("wss", "127.0.0.1") if tls else ("ws", None)
    try:
        ws = await websockets.connect(
            f"{scheme}://127.0.0.1:{port}/ws/public", sock=sock, ssl=tls, server_hostname=host
        )
    except (TimeoutError, OSError, ssl.SSLError, websockets.InvalidHandshake):
        sock.close()
        return None  # an overloaded server counts as a refusal
    try:
        json.loads(await ws.recv())
        return ws
    except websockets.ConnectionClosed:
        return None


async def hammer(ws: Any, stop: asyncio.Event, sent: list[int]) -> None:
    """Subscribe in a loop, as fast as the socket takes them, without reading the answers."""
    with contextlib.suppress(websockets.ConnectionClosed):
        while not stop.is_set():
            await ws.send(SUBSCRIBE)
            sent[0] += 1
            await asyncio.sleep(0)


async def knock(port: int, stop: asyncio.Event, n: int, tls: ssl.SSLContext | None) -> int:
    """A rider past the cap, from one address, reconnecting as fast as it is turned away."""
    refused = 0
    while not stop.is_set():
        ws = await rider(port, n, tls)
        if ws is None:
            refused += 1
        else:
            await ws.close()
    return refused


async def riders_process(port: int, cafile: str | None, knocking: int) -> None:
    """The riders, in a process of their own: connect, then hammer between "go" and "stop"."""
    loop = asyncio.get_running_loop()
    tls = ssl.create_default_context(cafile=cafile) if cafile else None
    riders = []
    n = 0
    while True:
        ws = await rider(port, n, tls)
        n += 1
        if ws is None:
            break
        riders.append(ws)
    print(f"held {len(riders)}", flush=True)
    while (await loop.run_in_executor(None, sys.stdin.readline)).strip() == "go":
        stop = asyncio.Event()
        sent = [0]
        tasks = [asyncio.create_task(hammer(ws, stop, sent)) for ws in riders]
        # Each knocker has an address of its own, the same in every round: a client
        # reconnecting in a loop, which spends its PUBLIC_CONNECTS budget in round 1.
        start = n + 1
        knockers = [asyncio.create_task(knock(port, stop, start + k, tls)) for k in range(knocking)]
        await loop.run_in_executor(None, sys.stdin.readline)  # "stop"
        stop.set()
        refused = sum(await asyncio.gather(*knockers))
        # A send waits while the server paces that rider: whole frames are buffered by
        # then, so cancelling the wait leaves the socket usable for the next round.
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        open_ = sum(1 for ws in riders if ws.state is websockets.protocol.State.OPEN)
        print(f"refused {refused} sent {sent[0]} open {open_}", flush=True)


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

    pin = args.pin and len(os.sched_getaffinity(0)) >= 2
    cores = sorted(os.sched_getaffinity(0))

    def server_limits() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))
        if pin:
            os.sched_setaffinity(0, {cores[0]})

    def riders_limits() -> None:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
        if pin:
            os.sched_setaffinity(0, set(cores[1:]))

    proc = subprocess.Popen(
        [sys.executable, "-m", "server", "serve", "--port", str(port)],
        env=env, cwd=REPO, preexec_fn=server_limits, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    if pin:
        os.sched_setaffinity(0, set(cores[1:]))  # so nginx, started from here, is there too
    riders: subprocess.Popen[str] | None = None
    proxy = None
    tls = None
    front = ["--riders", str(port)]
    try:
        for _ in range(300):
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/health").status_code == 200:
                    break
            await asyncio.sleep(0.1)
        if args.nginx:
            # deploy/nginx.conf as shipped, with only this machine's names rewritten.
            from tests.deploy.nginx_proxy import render

            proxy = render(data / "nginx", [f"127.0.0.1:{port}"], worker_connections=4096)
            proxy.start()
            cafile = str(proxy.prefix / "fullchain.pem")
            tls = ssl.create_default_context(cafile=cafile)
            url = proxy.https
            front = ["--riders", str(proxy.https_port), "--cafile", cafile]
        before = rss_bytes(proc.pid) / 2**20
        riders = subprocess.Popen(
            [sys.executable, __file__, *front, "--knockers", str(args.knockers)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, start_new_session=True,
            preexec_fn=riders_limits,
        )  # fmt: skip
        assert riders.stdin is not None and riders.stdout is not None
        held = int(riders.stdout.readline().split()[1])
        cap = nofile - 512  # FD_RESERVE's default
        print(f"riders held before the cap: {held} (cap {cap}: {held / cap:.2f}x)")
        grown = rss_bytes(proc.pid) / 2**20 - before
        print(f"server memory: {before:.0f} MB before them, +{grown:.0f} MB with them"
              f" ({grown * 1024 / max(held, 1):.0f} kB a rider)")  # fmt: skip
        if pin:
            os.sched_setaffinity(0, {cores[0]})  # the agent: with the server
        others = "nginx and riders" if proxy else "riders"
        where = f"server and agent on core {cores[0]}, {others} on {cores[1:]}"
        print(where if pin else "unpinned")
        await p99_of(url, args.posts, tls, token)  # warm-up: first writes, caches, GC
        ratios, empty_ratios = [], []
        for round_ in range(1, args.rounds + 1):
            idle = await p99_of(url, args.posts, tls, token)
            empty_idle = await p99_of(url, args.posts, tls)
            riders.stdin.write("go\n")
            riders.stdin.flush()
            await asyncio.sleep(1.0)  # let the flood reach its pace
            cpu, started = cpu_seconds(proc.pid), time.monotonic()
            loaded = await p99_of(url, args.posts, tls, token)
            busy = (cpu_seconds(proc.pid) - cpu) / (time.monotonic() - started)
            empty_loaded = await p99_of(url, args.posts, tls)
            riders.stdin.write("stop\n")
            riders.stdin.flush()
            _, refused, _, sent, _, open_ = riders.stdout.readline().split()
            ratios.append(loaded / idle)
            empty_ratios.append(empty_loaded / empty_idle)
            print(
                f"round {round_}: ingest p99 idle {idle * 1000:.1f} ms, riders hammering"
                f" {loaded * 1000:.1f} ms = {ratios[-1]:.2f}x (/health {empty_idle * 1000:.1f}"
                f" -> {empty_loaded * 1000:.1f} ms = {empty_ratios[-1]:.2f}x);"
                f" riders sent {sent} subscribes,"
                f" {open_} of {held} still open, {refused} reconnects refused;"
                f" server busy {busy:.0%}, {rss_bytes(proc.pid) / 2**20:.0f} MB"
            )
        riders.stdin.write("done\n")
        riders.stdin.flush()
        riders.wait(60)
        ratio = statistics.median(ratios)
        verdict = "ok" if ratio <= 2 else "OVER"
        print(f"ingest p99 under riders: median {ratio:.2f}x idle (limit 2x: {verdict})")
        empty = statistics.median(empty_ratios)
        print(f"an empty endpoint under the same riders: median {empty:.2f}x idle")
    finally:
        if riders is not None and riders.poll() is None:
            riders.kill()
        if proxy is not None:
            proxy.stop()
        proc.send_signal(signal.SIGINT)
        proc.wait(20)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--nofile", type=int, default=2048)
    parser.add_argument("--posts", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-pin", dest="pin", action="store_false")
    parser.add_argument(
        "--nginx", action="store_true", help="everyone through deploy/nginx.conf (TLS), as deployed"
    )
    parser.add_argument(
        "--knockers", type=int, default=32, help="riders reconnecting past the cap in a loop"
    )
    parser.add_argument("--riders", type=int, metavar="PORT", help=argparse.SUPPRESS)
    parser.add_argument("--cafile", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.riders:
        asyncio.run(riders_process(args.riders, args.cafile, args.knockers))
    else:
        asyncio.run(run(args))


if __name__ == "__main__":
    main()
