"""GTFS-Realtime feed requests/s at 10,000 vehicles, against an empty endpoint in the same run.

Fills a SQLite store on tmpfs with N vehicles (each one live fix), starts a real
server process on loopback (uvicorn, as ``bustracker serve`` runs it) with one
extra public route answering an empty body, then hits each endpoint from
keep-alive HTTP connections for a few seconds. Three endpoints, one run: an
empty body (the floor of a request), bytes already in memory as big as the
feed (a static file served at best), and the feed. The feed is encoded once
per change (D51), so a feed request should cost what the static bytes cost:
the goal is feed/static >= 0.8 (noise on a shared box); feed/empty shows
what moving ~1 MB per request costs. Client and server share the cores.

    .venv/bin/python bench/gtfs_rt_bench.py [--vehicles 10000] [--seconds 5] [--connections 16]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

GOAL_RATIO = 0.8

SERVER = """
import sys, uvicorn
from litestar import get
from server.access import access
from server.app import create_app
from server.settings import load_settings

from litestar import Response

BODIES = {}

@get("/bench/empty", opt=access("public"), include_in_schema=False)
async def empty() -> bytes:
    return b""

@get("/bench/static", opt=access("public"), include_in_schema=False)
async def static(n: int) -> Response[bytes]:
    # A file already in memory, as big as the feed: what a static file server does at best.
    body = BODIES.setdefault(n, b"x" * n)
    return Response(body, media_type="application/x-protobuf")

app = create_app(load_settings())
app.register(empty)
app.register(static)
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def fill(data_dir: Path, vehicles: int) -> None:
    from server.model import FixIn
    from server.store import open_store

    store = open_store(None, data_dir)
    await store.open()
    try:
        now = datetime.now(UTC) - timedelta(seconds=2)
        for i in range(vehicles):
            device = await store.add_device(f"bus-{i}", f"hash-{i}", route=f"{i % 50}")
            fix = FixIn(now, 45.40 + (i % 100) * 0.002, 9.10 + (i // 100) * 0.002,
                        heading=float(i % 360), speed=8.0)  # fmt: skip
            await store.insert_fixes(device.id, [fix], now)
    finally:
        await store.close()


async def hammer(url: str, seconds: float, connections: int) -> tuple[float, int]:
    """Requests/s over ``seconds`` from ``connections`` keep-alive loops; and the body size."""
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:
        size = len((await client.get(url)).content)
        done = 0
        deadline = time.monotonic() + seconds

        async def loop() -> None:
            nonlocal done
            while time.monotonic() < deadline:
                r = await client.get(url)
                r.raise_for_status()
                done += 1

        started = time.monotonic()
        await asyncio.gather(*(loop() for _ in range(connections)))
        return done / (time.monotonic() - started), size


async def run(args: argparse.Namespace) -> int:
    base = Path("/dev/shm") if Path("/dev/shm").is_dir() else None
    with tempfile.TemporaryDirectory(dir=base) as tmp:
        data = Path(tmp) / "data"
        t0 = time.monotonic()
        await fill(data, args.vehicles)
        print(f"filled {args.vehicles} vehicles in {time.monotonic() - t0:.1f} s")
        port = free_port()
        env = {**os.environ, "BUSTRACKER_DATA_DIR": str(data), "GTFS_RT_MAX_AGE": "1h",
               "JWT_SECRET": "bench-" + "x" * 40}  # fmt: skip
        env.pop("DATABASE_URL", None)
        env.pop("REDIS_URL", None)
        server = subprocess.Popen([sys.executable, "-c", SERVER, str(port)], cwd=REPO, env=env)
        try:
            url = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 60
            while True:
                try:
                    feed = httpx.get(f"{url}/gtfs-rt/vehicle-positions", timeout=30)
                    from google.transit import gtfs_realtime_pb2 as rt

                    if len(rt.FeedMessage.FromString(feed.content).entity) >= args.vehicles:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    print("server did not serve every vehicle within 60 s", file=sys.stderr)
                    return 1
                time.sleep(0.2)
            size = len(feed.content)
            empty_rps, _ = await hammer(f"{url}/bench/empty", args.seconds, args.connections)
            static_rps, _ = await hammer(f"{url}/bench/static?n={size}", args.seconds,
                                         args.connections)  # fmt: skip
            feed_rps, _ = await hammer(f"{url}/gtfs-rt/vehicle-positions", args.seconds,
                                       args.connections)  # fmt: skip
        finally:
            server.terminate()
            server.wait(timeout=15)
    ratio = feed_rps / static_rps
    print(f"empty endpoint:                 {empty_rps:8.0f} req/s")
    print(f"static bytes, feed's size:      {static_rps:8.0f} req/s")
    print(f"feed ({args.vehicles} vehicles, {size / 1e6:.2f} MB): {feed_rps:8.0f} req/s")
    print(f"ratio feed/empty: {feed_rps / empty_rps:.2f} (what the body's size costs)")
    verdict = "ok" if ratio >= GOAL_RATIO else "BELOW GOAL"
    print(f"ratio feed/static: {ratio:.2f} (goal >= {GOAL_RATIO}) {verdict}")
    return 0 if ratio >= GOAL_RATIO else 1


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--vehicles", type=int, default=10_000)
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--connections", type=int, default=16)
    return asyncio.run(run(p.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
