"""Past one process: two ``bustracker serve`` processes, Redis and PostGIS behind nginx.

    .venv/bin/python bench/scale_bench.py [--seconds 15] [--devices 1000] [--budget 170]

Everything on this machine, on loopback: a throwaway PostGIS cluster (or
``BENCH_DATABASE_URL``), a private ``redis-server``, two server processes A and
B sharing both (``REDIS_URL``, one ``JWT_SECRET``), and two nginx instances
(Debian's ``nginx``): one proxying to A alone, one balancing A and B
(``least_conn``, keep-alive upstreams, as ``deploy/nginx.conf`` does). Prints:

- ingest (live mode, 10 fixes a request) in fixes/s: straight to A (the
  limit nginx is measured against), through nginx to A alone, through nginx
  to A and B; the ratio two processes / one is what the second process adds
  on this box;
- live updates across processes: a rider's WebSocket on B, a fix posted to A,
  the time until B pushes it (through Redis), p50/p99 over ``--updates``
  fixes, against the same measurement with the rider on A (no Redis hop).

The load generator, nginx, both servers, Redis and PostgreSQL share the same
cores, so on a 2-core box the second process competes with the database for
CPU: the ratio says what scaling out buys *here*, and docs/scaling.md says
what it means for a bigger box.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from websockets.asyncio.client import connect

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.ingest_bench import Batches, add_devices, body, database, redis_for  # noqa: E402
from bench.ingest_load import Phase, RawConnection, report, run_phase  # noqa: E402
from tests import service_procs, services  # noqa: E402

NGINX_CONF = """
worker_processes 1;
pid {base}/nginx.pid;
error_log {base}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {base}/body;
    proxy_temp_path {base}/proxy;
    upstream app {{
        least_conn;
{servers}
        keepalive 64;
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
        }}
    }}
}}
"""


def env_for(db: str, redis_url: str, data_dir: str) -> dict[str, str]:
    env = {
        **os.environ,
        "DATABASE_URL": db,
        "REDIS_URL": redis_url,
        "JWT_SECRET": "bench-" + "x" * 40,
        "RATE_LIMIT_TELEMETRY": "1000000/second",
        "LOG_LEVEL": "warning",
        "BUSTRACKER_DATA_DIR": data_dir,
    }
    return env


@contextlib.contextmanager
def processes(db: str, redis_url: str) -> Iterator[list[tuple[str, int]]]:
    env = env_for(db, redis_url, tempfile.mkdtemp(prefix="bench-scale-"))
    subprocess.run([sys.executable, "-m", "server", "migrate"], env=env, cwd=ROOT, check=True)
    started: list[tuple[subprocess.Popen[bytes], str]] = []
    try:
        for _ in range(2):
            port = services.free_port()
            proc = subprocess.Popen(
                [sys.executable, "-m", "server", "serve", "--host", "127.0.0.1", "--port",
                 str(port)],
                env=env,
                cwd=ROOT,
                preexec_fn=service_procs._die_with_parent(signal.SIGTERM),
            )  # fmt: skip
            started.append((proc, f"http://127.0.0.1:{port}"))
        for proc, url in started:
            deadline = time.monotonic() + 30
            while True:
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                        break
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("bustracker serve did not come up")
                time.sleep(0.1)
        yield [(url, proc.pid) for proc, url in started]
    finally:
        for proc, _ in started:
            proc.terminate()
        for proc, _ in started:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()


@contextlib.contextmanager
def nginx(upstreams: list[str]) -> Iterator[str]:
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(binary).exists():
        raise SystemExit("this bench needs nginx (Debian package nginx)")
    base = Path(tempfile.mkdtemp(prefix="bench-nginx-"))
    port = services.free_port()
    servers = "\n".join(f"        server {u.removeprefix('http://')};" for u in upstreams)
    conf = base / "nginx.conf"
    conf.write_text(NGINX_CONF.format(base=base, servers=servers, port=port))
    proc = subprocess.Popen(
        [binary, "-c", str(conf), "-p", str(base), "-g", "daemon off;"],
        preexec_fn=service_procs._die_with_parent(signal.SIGTERM),
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 10
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"nginx did not come up: {(base / 'error.log').read_text()}")
            time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(base, ignore_errors=True)


async def ingest(
    name: str, url: str, tokens: list[str], batches: Batches, args: argparse.Namespace
) -> Phase:
    host, port = url.removeprefix("http://").split(":")
    free = [RawConnection(host, int(port)) for _ in range(args.concurrency)]

    async def one() -> int:
        device, rows = batches.take()
        conn = free.pop()
        try:
            status, answer = await conn.post("/v1/telemetry/location", body(rows), tokens[device])
        finally:
            free.append(conn)
        if status != 200:
            raise RuntimeError(f"HTTP {status}")
        accepted: int = json.loads(answer)["accepted"]
        return accepted

    return await run_phase(Phase(name), args.seconds, args.concurrency, one, None)


async def live_latency(post_to: str, rider_on: str, token: str, updates: int) -> list[float]:
    """Seconds from POST (to ``post_to``) to the rider's update frame (on ``rider_on``)."""
    ws_url = rider_on.replace("http://", "ws://") + "/ws/public"
    seen: list[float] = []
    async with connect(ws_url, open_timeout=10) as ws, httpx.AsyncClient(base_url=post_to) as http:
        while json.loads(await ws.recv())["type"] != "snapshot":
            pass
        for i in range(updates):
            lat = 45.0 + (i + 1) * 1e-3
            t = datetime.now(UTC).isoformat().replace("+00:00", "Z")
            started = time.perf_counter()
            r = await http.post(
                "/v1/telemetry/location",
                json={"fixes": [{"t": t, "lat": lat, "lon": 9.0}]},
                headers={"Authorization": f"Bearer {token}"},
            )
            r.raise_for_status()
            async with asyncio.timeout(10):
                while True:
                    frame = json.loads(await ws.recv())
                    if any(v.get("lat") == lat for v in frame.get("vehicles", [])):
                        break
            seen.append(time.perf_counter() - started)
            await asyncio.sleep(0.3)  # past the frame coalescing interval (0.25 s)
    return seen


def quantile_ms(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


async def bench(db: str, a: str, b: str, one: str, two: str, args: argparse.Namespace) -> None:
    _, tokens = await add_devices(db, args.devices + 1)
    rider_token, tokens = tokens[-1], tokens[:-1]
    now = datetime.now(UTC).replace(microsecond=0)

    def batches(hours_ago: int) -> Batches:
        return Batches(args.devices, 10, now - timedelta(hours=hours_ago))

    print(
        f"{args.devices} devices, {args.concurrency} requests in flight, {args.seconds:g} s a phase"
    )
    direct = await ingest("direct to A", a, tokens, batches(40), args)
    print(report(direct), flush=True)
    via_one = await ingest("nginx -> A", one, tokens, batches(30), args)
    print(report(via_one), flush=True)
    via_two = await ingest("nginx -> A + B", two, tokens, batches(20), args)
    print(report(via_two), flush=True)
    nginx_cost = via_one.rate / direct.rate if direct.rate else float("nan")
    gain = via_two.rate / via_one.rate if via_one.rate else float("nan")
    print(f"nginx -> A / direct to A   = {nginx_cost:.2f}")
    print(f"two processes / one        = {gain:.2f}")

    same = await live_latency(a, a, rider_token, args.updates)
    cross = await live_latency(a, b, rider_token, args.updates)
    for label, values in (("post A, rider on A", same), ("post A, rider on B", cross)):
        print(
            f"  live {label}: p50 {quantile_ms(values, 0.5):6.1f} ms"
            f"  p99 {quantile_ms(values, 0.99):6.1f} ms  ({len(values)} updates, all arrived)"
        )
    ratio = quantile_ms(cross, 0.5) / quantile_ms(same, 0.5)
    print(f"cross-process / same-process live latency (p50) = {ratio:.2f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=15.0, help="length of each ingest phase")
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--updates", type=int, default=20, help="live updates timed per case")
    parser.add_argument("--budget", type=float, default=170.0, help="hard stop (s)")
    args = parser.parse_args()
    if args.seconds * 3 + 70 > args.budget:
        parser.error(f"3 phases of {args.seconds:g} s plus set-up exceed --budget {args.budget:g}")
    signal.signal(signal.SIGALRM, lambda *_: (_ for _ in ()).throw(TimeoutError("budget exceeded")))
    signal.alarm(int(args.budget))
    started = time.monotonic()
    with (
        database(args) as db,
        redis_for(2) as redis_url,
        processes(db, str(redis_url)) as [(a, _), (b, _)],
        nginx([a]) as one,
        nginx([a, b]) as two,
    ):
        asyncio.run(bench(db, a, b, one, two, args))
    print(f"done in {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
