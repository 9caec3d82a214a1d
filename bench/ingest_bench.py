"""Ingest throughput on PostGIS: the whole HTTP stack against the database alone.

    .venv/bin/python bench/ingest_bench.py [--seconds 20] [--devices 2000] [--client httpx]

Prints, in one run:

- live mode (every device sends 10 fixes a request): fixes/s through a real
  ``bustracker serve`` process on loopback, fed by 64 concurrent keep-alive
  HTTP connections, as a ratio of raw asyncpg running the store's per-batch
  statement on the same batches with the same pool size, one statement per
  batch (the cost of HTTP, auth, rate limiting and validation, less what the
  server's group commit saves: docs/decisions.md D21). Goal >= 0.5; and the
  absolute rate against 10,000 buses at 1 Hz.
- backfill mode (500 fixes a request): fixes/s through HTTP as a ratio of raw
  COPY into a staging table + INSERT ... SELECT into ``positions``. Goal >= 0.5.
- p50/p99 request latency in both modes, and the CPU each process used (and
  how busy the whole box was: other load on it shows up there).

The load generator shares the 2 cores with the server and the database, so it
must be cheap: by default it is a bare HTTP/1.1 keep-alive client
(``RawConnection`` in ``bench/ingest_load.py``, ~0.25 ms of CPU a request).
``--client httpx`` uses one httpx client per request in flight instead; httpx
spends ~1.5 ms of CPU a request, and then the load generator, not the server,
is what a run measures (the "client CPU" column shows it).

The database is ``BENCH_DATABASE_URL`` (a superuser URL; a scratch database is
created on it and dropped) or, by default, a throwaway cluster started the way
the test suite starts one (``tests/services.py``: fsync off, so absolute
numbers flatter durability; the ratios compare like with like). Loopback only;
every phase stops at its deadline and the whole run stays within ``--budget``.
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
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.ingest_load import Phase, RawConnection, report, run_phase  # noqa: E402
from server.auth import hash_device_token, new_device_token  # noqa: E402
from server.store.postgis import _INSERT_BATCH, PostgisStore  # noqa: E402
from tests import pg_service, service_procs, services  # noqa: E402
from tests.redis_service import _RedisProcess  # noqa: E402

FIX_COLUMNS = ["fix_time", "lat", "lon", "alt", "speed", "heading", "hdop", "sats", "mode"]
# COPY cannot compute the geography, so rows land here first (as the issue's
# "COPY + insert-select" reference measurement did).
STAGE = """CREATE TEMP TABLE IF NOT EXISTS bench_stage (
    device_id bigint, received_at timestamptz, fix_time timestamptz, lat float8, lon float8,
    alt float8, speed float8, heading float8, hdop float8, sats int4, mode int4
) ON COMMIT DELETE ROWS"""
POOL_SIZE = 20  # the server's DB_POOL_SIZE default; raw gets the same connections
CITY = 10_000  # fixes/s: the absolute goal, 10,000 buses at 1 Hz on one 2-core box


class Batches:
    """Per-device batches of consecutive 1 Hz fixes, never repeating a (device, t)."""

    def __init__(self, devices: int, size: int, base: datetime) -> None:
        self.devices, self.size, self.base = devices, size, base
        self.sent = [0] * devices
        self.next_device = 0

    def take(self) -> tuple[int, list[tuple[Any, ...]]]:
        d = self.next_device
        self.next_device = (d + 1) % self.devices
        k = self.sent[d]
        self.sent[d] += 1
        start = self.base + timedelta(seconds=k * self.size)
        rows = [
            (start + timedelta(seconds=j), 45.0 + d * 1e-4 + j * 1e-6, 9.0 + j * 1e-6,
             120.0, 6.5, 90.0, 0.9, 8, 3)
            for j in range(self.size)
        ]  # fmt: skip
        return d, rows


def body(rows: list[tuple[Any, ...]]) -> bytes:
    fixes = [
        {"t": r[0].isoformat().replace("+00:00", "Z"), "lat": r[1], "lon": r[2], "alt": r[3],
         "speed": r[4], "heading": r[5], "hdop": r[6], "sats": r[7], "mode": r[8]}
        for r in rows
    ]  # fmt: skip
    return json.dumps({"fixes": fixes, "agent": {"version": "bench"}}).encode()


async def http_phase(
    name: str, url: str, tokens: list[str], batches: Batches, args: argparse.Namespace, pid: int
) -> Phase:
    path = "/v1/telemetry/location"

    def stored(status: int, answer: bytes) -> int:
        if status != 200:
            raise RuntimeError(f"HTTP {status}")
        accepted: int = json.loads(answer)["accepted"]
        return accepted

    if args.client == "raw":
        host, port = url.removeprefix("http://").split(":")
        free = [RawConnection(host, int(port)) for _ in range(args.concurrency)]

        async def one_raw() -> int:
            device, rows = batches.take()
            conn = free.pop()
            try:
                return stored(*await conn.post(path, body(rows), tokens[device]))
            finally:
                free.append(conn)

        return await run_phase(Phase(name), args.seconds, args.concurrency, one_raw, pid)

    # One client per request in flight, each with one keep-alive connection: httpx's
    # shared pool costs more CPU per request the more connections it holds.
    clients = [
        httpx.AsyncClient(base_url=url, timeout=60, limits=httpx.Limits(max_connections=1))
        for _ in range(args.concurrency)
    ]
    try:

        async def one() -> int:
            device, rows = batches.take()
            client = clients.pop()
            try:
                r = await client.post(
                    path,
                    content=body(rows),
                    headers={"Authorization": f"Bearer {tokens[device]}",
                             "Content-Type": "application/json"},
                )  # fmt: skip
            finally:
                clients.append(client)
            return stored(r.status_code, r.content)

        return await run_phase(Phase(name), args.seconds, args.concurrency, one, pid)
    finally:
        for client in clients:
            await client.aclose()


async def raw_insert_phase(
    db: str, ids: list[int], batches: Batches, args: argparse.Namespace
) -> Phase:
    pool = await asyncpg.create_pool(db, min_size=POOL_SIZE, max_size=POOL_SIZE)
    try:

        async def one() -> int:
            device, rows = batches.take()
            # The phone columns (accuracy, battery, charge) are absent, as from a bus unit.
            columns = [*zip(*rows, strict=True), *([None] * len(rows) for _ in range(3))]
            async with pool.acquire() as conn:
                row = await conn.fetchrow(_INSERT_BATCH, ids[device], *columns, datetime.now(UTC))
            return int(row["accepted"])

        return await run_phase(Phase("live raw asyncpg"), args.seconds, args.concurrency, one, None)
    finally:
        await pool.close()


async def raw_copy_phase(
    db: str, ids: list[int], batches: Batches, args: argparse.Namespace
) -> Phase:
    pool = await asyncpg.create_pool(db, min_size=POOL_SIZE, max_size=POOL_SIZE)
    cols = ", ".join(FIX_COLUMNS)
    insert = (
        f"INSERT INTO positions (device_id, received_at, {cols}, geog)"
        f" SELECT device_id, received_at, {cols},"
        " ST_SetSRID(ST_MakePoint(lon, lat), 4326)::geography FROM bench_stage"
        " ON CONFLICT (device_id, fix_time) DO NOTHING"
    )
    try:

        async def one() -> int:
            device, rows = batches.take()
            now = datetime.now(UTC)
            records = [(ids[device], now, *r) for r in rows]
            async with pool.acquire() as conn, conn.transaction():
                await conn.execute(STAGE)
                await conn.copy_records_to_table(
                    "bench_stage",
                    records=records,
                    columns=["device_id", "received_at", *FIX_COLUMNS],
                )
                status = await conn.execute(insert)
            return int(status.split()[-1])

        return await run_phase(
            Phase("backfill raw COPY"), args.seconds, args.concurrency, one, None
        )
    finally:
        await pool.close()


async def add_devices(db: str, n: int) -> tuple[list[int], list[str]]:
    store = PostgisStore(db, migrate=False)
    await store.open()
    try:
        ids, tokens = [], []
        for i in range(n):
            token = new_device_token()
            device = await store.add_device(f"bench-{i}", hash_device_token(token))
            ids.append(device.id)
            tokens.append(token)
        return ids, tokens
    finally:
        await store.close()


@contextlib.contextmanager
def database(args: argparse.Namespace) -> Iterator[str]:
    """A scratch PostGIS database: on BENCH_DATABASE_URL, or on a throwaway cluster."""
    external = os.environ.get("BENCH_DATABASE_URL")
    local = None
    if external:
        cluster = services.PgCluster(external)
    else:
        print("starting a throwaway PostgreSQL cluster ...", flush=True)
        local = pg_service._start_local_cluster()
        cluster = local
    try:
        cluster.prepare_template("postgresql-postgis-3")
        name = cluster.create_database()
        try:
            yield cluster.url(name)
        finally:
            cluster.drop_database(name)
    finally:
        if local is not None:
            pg_service._stop_local_cluster(local)


@contextlib.contextmanager
def redis_for(workers: int) -> Iterator[str | None]:
    """Several workers share rate limits and the live bus through Redis: start one."""
    if workers == 1:
        yield None
        return
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("--workers > 1 needs redis-server (Debian package redis-server)")
    redis = _RedisProcess(binary, Path(tempfile.mkdtemp(prefix="bench-redis-")))
    if not redis.start(services.free_port()):
        raise SystemExit("redis-server did not start")
    try:
        yield f"redis://127.0.0.1:{redis.port}/0"
    finally:
        redis.stop_and_clean()


@contextlib.contextmanager
def server(db: str, workers: int = 1) -> Iterator[tuple[str, int]]:
    port = services.free_port()
    env = {
        **os.environ,
        "DATABASE_URL": db,
        "JWT_SECRET": "bench-" + "x" * 40,
        # The bench measures throughput, not the per-device limit agents live by.
        "RATE_LIMIT_TELEMETRY": "1000000/second",
        "LOG_LEVEL": "warning",
        "DB_POOL_SIZE": str(POOL_SIZE),
        "BUSTRACKER_DATA_DIR": tempfile.mkdtemp(prefix="bench-"),
    }
    env.pop("REDIS_URL", None)
    subprocess.run([sys.executable, "-m", "server", "migrate"], env=env, cwd=ROOT, check=True)
    redis = contextlib.ExitStack()
    redis_url = redis.enter_context(redis_for(workers))
    if redis_url:
        env["REDIS_URL"] = redis_url
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "server", "serve", "--host", "127.0.0.1"),
            *("--port", str(port), "--workers", str(workers)),
        ],
        env=env,
        cwd=ROOT,
        preexec_fn=service_procs._die_with_parent(signal.SIGTERM),
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("bustracker serve did not come up")
            time.sleep(0.1)
        yield url, proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        redis.close()


async def bench(db: str, url: str, pid: int, args: argparse.Namespace) -> None:
    ids, tokens = await add_devices(db, args.devices)
    now = datetime.now(UTC).replace(microsecond=0)

    # Separate hours of the last day per phase, so no phase meets another's rows as duplicates.
    def batches(size: int, hours_ago: int) -> Batches:
        return Batches(args.devices, size, now - timedelta(hours=hours_ago))

    print(
        f"{args.devices} devices, {args.concurrency} requests in flight ({args.client} client),"
        f" {args.seconds:g} s a phase",
        flush=True,
    )
    live_raw = await raw_insert_phase(db, ids, batches(10, 40), args)
    print(report(live_raw), flush=True)
    live_http = await http_phase("live HTTP", url, tokens, batches(10, 30), args, pid)
    print(report(live_http), flush=True)
    copy_raw = await raw_copy_phase(db, ids, batches(500, 20), args)
    print(report(copy_raw), flush=True)
    backfill_http = await http_phase("backfill HTTP", url, tokens, batches(500, 10), args, pid)
    print(report(backfill_http), flush=True)
    for label, http, raw in (("live", live_http, live_raw), ("backfill", backfill_http, copy_raw)):
        ratio = http.rate / raw.rate if raw.rate else float("nan")
        verdict = "meets" if ratio >= 0.5 else "misses"
        print(f"{label:<9} HTTP / raw = {ratio:.2f}  ({verdict} the goal of 0.5)")
    verdict = "meets" if live_http.rate >= CITY else "misses"
    share = live_http.rate / CITY
    print(f"live HTTP = {share:.2f} x {CITY:,} buses at 1 Hz  ({verdict} the goal of 1)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="length of each of 4 phases")
    parser.add_argument("--devices", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=64, help="requests in flight")
    parser.add_argument(
        "--client",
        choices=("httpx", "raw"),
        default="raw",
        help="load generator (see the module's docstring)",
    )
    parser.add_argument(
        "--budget", type=float, default=180.0, help="hard stop for the whole run (s)"
    )
    parser.add_argument(
        "--workers", type=int, default=1, help="server processes (> 1 also starts a Redis)"
    )
    args = parser.parse_args()
    if args.seconds * 4 + 40 > args.budget:
        parser.error(
            f"4 phases of {args.seconds:g} s plus set-up do not fit in --budget {args.budget:g}"
        )
    signal.signal(signal.SIGALRM, lambda *_: (_ for _ in ()).throw(TimeoutError("budget exceeded")))
    signal.alarm(int(args.budget))
    started = time.monotonic()
    with database(args) as db, server(db, args.workers) as (url, pid):
        asyncio.run(bench(db, url, pid, args))
    print(f"done in {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
