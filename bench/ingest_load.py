"""Load generation for bench/ingest_bench.py: phases, CPU accounting, a light HTTP client."""

from __future__ import annotations

import asyncio
import os
import resource
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Phase:
    name: str
    fixes: int = 0
    requests: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)
    seconds: float = 0.0
    server_cpu: float = 0.0
    client_cpu: float = 0.0
    machine: float = 0.0  # share of all cores busy

    @property
    def rate(self) -> float:
        return self.fixes / self.seconds if self.seconds else 0.0

    def latency_ms(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def process_cpu(pid: int) -> float:
    """CPU seconds of ``pid`` and its live descendants (uvicorn's worker processes)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    total = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    for task in Path(f"/proc/{pid}/task").iterdir():
        children = (task / "children").read_text().split()
        total += sum(process_cpu(int(child)) for child in children)
    return total


def machine_busy() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs: is the box itself the limit?"""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


def own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def run_phase(
    phase: Phase,
    seconds: float,
    concurrency: int,
    one: Callable[[], Awaitable[int]],
    server_pid: int | None,
) -> Phase:
    """Run ``one`` from ``concurrency`` tasks until the deadline; ``one`` returns fixes stored."""
    deadline = time.monotonic() + seconds
    cpu0, srv0 = own_cpu(), process_cpu(server_pid) if server_pid else 0.0
    busy0, total0 = machine_busy()

    async def worker() -> None:
        while time.monotonic() < deadline:
            started = time.perf_counter()
            try:
                stored = await one()  # not `phase.fixes += await ...`: that reads before awaiting
            except Exception as exc:  # counted and shown: a bench must not die on one error
                key = type(exc).__name__ + (f" {exc}"[:60] if str(exc) else "")
                phase.errors[key] = phase.errors.get(key, 0) + 1
                continue
            phase.latencies.append(time.perf_counter() - started)
            phase.fixes += stored
            phase.requests += 1

    started = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    phase.seconds = time.monotonic() - started
    phase.client_cpu = own_cpu() - cpu0
    busy1, total1 = machine_busy()
    phase.machine = (busy1 - busy0) / max(1, total1 - total0)
    if server_pid:
        phase.server_cpu = process_cpu(server_pid) - srv0
    return phase


class RawConnection:
    """A bare HTTP/1.1 keep-alive connection: a load generator that costs little CPU.

    httpx spends a few hundred microseconds of CPU per request; on a 2-core box
    that is CPU taken from the server being measured. ``--client raw`` uses this
    instead, to show how much of a result is the client's.
    """

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, payload: bytes, token: str) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {self.host}\r\nAuthorization: Bearer {token}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n"
        )
        self.writer.write(head.encode() + payload)
        status_line = await self.reader.readline()
        length = 0
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        return int(status_line.split()[1]), await self.reader.readexactly(length)


def report(phase: Phase) -> str:
    errors = f"  errors: {phase.errors}" if phase.errors else ""
    cpu = f"client CPU {phase.client_cpu / phase.seconds:4.0%}"
    if phase.server_cpu:
        cpu += f", server CPU {phase.server_cpu / phase.seconds:4.0%}"
    cpu += f", all {os.cpu_count()} cores {phase.machine:4.0%} busy"
    p50, p99 = phase.latency_ms(0.5), phase.latency_ms(0.99)
    return (
        f"  {phase.name:<18} {phase.rate:>8,.0f} fixes/s {phase.requests:>7,} requests"
        f"  p50 {p50:6.1f} ms  p99 {p99:6.1f} ms  ({cpu}){errors}"
    )
