"""``bustracker worker`` as an operator runs it: one pass with alert email, the loop's /metrics,
and errors reported to a Sentry DSN.

Real servers on loopback throughout: aiosmtpd receives the alert email, an
HTTP server stands in for Sentry's ingest and reads the envelope the SDK sends.
"""

from __future__ import annotations

import asyncio
import email
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.message import Message
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller
from prometheus_client.parser import text_string_to_metric_families

from server.cli import main
from server.model import FixIn
from server.store import open_store
from server.store.sqlite_lock import maintenance_lock
from tests.server.running import run_async
from tests.server.sentry_stub import sentry_stub
from tests.services import free_port


class Inbox:
    """An aiosmtpd handler keeping every message it is given."""

    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(email.message_from_bytes(envelope.content))
        return "250 OK"


@pytest.fixture
def smtp() -> Iterator[tuple[int, Inbox]]:
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield controller.port, inbox
    finally:
        controller.stop()


def seed(data_dir: Path) -> None:
    """Three buses, two of them last heard an hour ago; one fix past retention."""
    # Taken now, not at import: the suite may collect this module many minutes earlier.
    now = datetime.now(UTC).replace(microsecond=0)

    async def work() -> None:
        store = open_store(None, data_dir)
        await store.open()
        try:
            for i, age in enumerate((timedelta(minutes=1), timedelta(hours=1), timedelta(hours=1))):
                bus = await store.add_device(f"bus-{i}", f"hash-{i}")
                fixes = [FixIn(now - timedelta(days=120), 45.0, 9.0), FixIn(now - age, 45, 9)]
                await store.insert_fixes(bus.id, fixes if i == 0 else fixes[1:], now - age)
        finally:
            await store.close()

    run_async(work)


def test_once_expires_and_emails_the_offline_alert(
    tmp_path: Path,
    smtp: tuple[int, Inbox],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    port, inbox = smtp
    seed(tmp_path)
    for name, value in {
        "BUSTRACKER_DATA_DIR": str(tmp_path),
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": str(port),
        "SMTP_FROM": "tracker@depot.example",
        "ALERT_EMAIL_TO": "ops@depot.example, night@depot.example",
    }.items():
        monkeypatch.setenv(name, value)
    assert main(["worker", "--once"]) == 0
    out = capsys.readouterr().out
    assert "deleted 1 fixes; 2 of 3 vehicles offline (alert raised)" in out
    [msg] = inbox.messages
    assert msg["Subject"] == "bustracker: 2 of 3 buses offline (67%)"
    assert msg["From"] == "tracker@depot.example"
    assert msg["To"] == "ops@depot.example, night@depot.example"
    assert "More than 10% of the buses in service are offline" in msg.get_payload()

    # While another worker holds the lock, a pass does nothing and says so.
    async def locked_run() -> int:
        async with maintenance_lock(tmp_path / "bustracker.sqlite3") as held:
            assert held
            return await asyncio.to_thread(main, ["worker", "--once"])

    assert run_async(locked_run) == 3
    assert "another worker holds the maintenance lock" in capsys.readouterr().out


def _env(**values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SMTP_", "SENTRY_"))}
    env.pop("DATABASE_URL", None)
    return {**env, **values}


def test_the_loop_serves_its_metrics(tmp_path: Path) -> None:
    seed(tmp_path)
    port = free_port()
    env = _env(BUSTRACKER_DATA_DIR=str(tmp_path), WORKER_METRICS_PORT=str(port))
    proc = subprocess.Popen(
        [sys.executable, "-m", "server", "worker"], env=env, stderr=subprocess.PIPE
    )
    try:
        samples: dict[tuple[str, str], float] = {}
        deadline = time.monotonic() + 30
        while ("bustracker_worker_passes_total", "ok") not in samples:
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            assert time.monotonic() < deadline, "the worker never served a pass's metrics"
            try:
                text = httpx.get(f"http://127.0.0.1:{port}/metrics").text
            except httpx.TransportError:
                time.sleep(0.1)
                continue
            samples = {
                (s.name, next(iter(s.labels.values()), "")): s.value
                for family in text_string_to_metric_families(text)
                for s in family.samples
            }
            if samples.get(("bustracker_worker_passes_total", "ok"), 0) < 1:
                samples.pop(("bustracker_worker_passes_total", "ok"), None)
                time.sleep(0.1)
        assert samples[("bustracker_vehicles", "offline")] == 2
        assert samples[("bustracker_vehicles", "online")] == 1
        assert samples[("bustracker_fleet_offline_alert", "")] == 1
        assert samples[("bustracker_retention_fixes_deleted_total", "")] == 1
        assert samples[("bustracker_database_size_bytes", "")] > 0
        assert 0 < samples[("bustracker_data_disk_used_ratio", "")] < 1
    finally:
        proc.terminate()
        proc.wait(10)
        if proc.stderr:
            proc.stderr.close()


def test_an_unhandled_error_reaches_the_sentry_dsn(tmp_path: Path) -> None:
    # A data directory whose database file is not SQLite: the worker dies on it.
    (tmp_path / "bustracker.sqlite3").write_bytes(b"this is not a database" * 100)
    with sentry_stub() as stub:
        env = _env(BUSTRACKER_DATA_DIR=str(tmp_path), SENTRY_DSN=stub.dsn)
        result = subprocess.run(
            [sys.executable, "-m", "server", "worker", "--once"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode != 0
    assert "file is not a database" in result.stderr
    paths = {path for path, _ in stub.received}
    assert paths == {"/api/42/envelope/"}, paths
    [event] = stub.events()
    [exc] = event["exception"]["values"]
    assert (exc["type"], exc["value"]) == ("DatabaseError", "file is not a database")
    assert event["tags"]["component"] == "worker"
    assert event["release"].startswith("bustracker@")
