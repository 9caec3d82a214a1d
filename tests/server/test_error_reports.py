"""The API server's unhandled errors reach a Sentry DSN, without secrets; client errors do not.

A real ``bustracker serve`` process on loopback, SQLite, and an HTTP server
standing in for Sentry's ingest (tests/server/sentry_stub.py). The 500 is a
real one: the ``routes`` table is dropped under the running server, as a
botched manual migration would, so adding a route fails inside the store.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from server.auth import hash_password
from server.error_reports import scrub
from server.http import ApiError
from server.store import open_store
from server.store.base import StoreUnavailable
from tests.server.running import run_async
from tests.server.sentry_stub import sentry_stub
from tests.services import free_port

PASSWORD = "correct horse battery"
QUERY_SECRET = "qs-secret-0123456789"
BODY_SECRET = "body-secret-0123456789"


def _seed(data_dir: Path) -> None:
    async def work() -> None:
        store = open_store(None, data_dir)
        await store.open()
        try:
            await store.add_user("ops", hash_password(PASSWORD), "operator")
        finally:
            await store.close()

    run_async(work)


def _serve(data_dir: Path, dsn: str, port: int) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SENTRY_")}
    env.pop("DATABASE_URL", None)
    env.update(BUSTRACKER_DATA_DIR=str(data_dir), SENTRY_DSN=dsn)
    return subprocess.Popen(
        [sys.executable, "-m", "server", "serve", "--port", str(port)],
        env=env,
        stderr=subprocess.PIPE,
    )


def _wait_up(proc: subprocess.Popen[bytes], url: str) -> None:
    deadline = time.monotonic() + 30
    while True:
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        assert time.monotonic() < deadline, "bustracker serve never answered"
        try:
            httpx.get(f"{url}/health")
            return
        except httpx.TransportError:
            time.sleep(0.1)


def test_a_500_reaches_the_dsn_without_secrets_and_4xx_do_not(tmp_path: Path) -> None:
    _seed(tmp_path)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with sentry_stub() as stub:
        proc = _serve(tmp_path, stub.dsn, port)
        try:
            _wait_up(proc, url)
            r = httpx.post(f"{url}/v1/auth/login", json={"username": "ops", "password": PASSWORD})
            r.raise_for_status()
            token = r.json()["access_token"]
            auth = {"Authorization": f"Bearer {token}"}
            # Answers the client caused: not errors of ours.
            assert (
                httpx.post(f"{url}/v1/routes", json={"route_id": "r1"}, headers=auth).status_code
                == 422
            )
            assert httpx.post(f"{url}/v1/routes", json={"route_id": "r1"}).status_code == 401
            r = httpx.patch(f"{url}/v1/routes/nope", json={"short_name": "x"}, headers=auth)
            assert r.status_code == 404

            with sqlite3.connect(tmp_path / "bustracker.sqlite3") as conn:
                conn.execute("DROP TABLE routes")
            r = httpx.post(
                f"{url}/v1/routes?token={QUERY_SECRET}&page=2",
                json={"route_id": "r1", "short_name": BODY_SECRET},
                headers=auth,
            )
            assert r.status_code == 500
            assert r.json() == {"error": "internal error"}
            [event] = stub.wait_for_events(1)
        finally:
            proc.terminate()
            proc.wait(10)
            if proc.stderr:
                proc.stderr.close()

    [exc] = event["exception"]["values"]
    assert (exc["type"], exc["value"]) == ("OperationalError", "no such table: routes")
    assert exc["mechanism"]["handled"] is False
    assert event["tags"]["component"] == "serve"
    assert event["release"].startswith("bustracker@")
    request = event["request"]
    assert request["method"] == "POST"
    assert request["url"].endswith("/v1/routes")
    assert "page=2" in request["query_string"]
    # Nothing secret the client sent, anywhere in what reached the DSN: not the
    # bearer token (header), not the query's token, not the body.
    sent = b"".join(body for _, body in stub.received)
    for secret in (token, QUERY_SECRET, BODY_SECRET, PASSWORD):
        assert secret.encode() not in sent, secret
    assert "data" not in request
    # Exactly one event: the 4xx before it, and the error's own log line, added none.
    assert len(stub.events()) == 1


@pytest.mark.parametrize(
    "exc",
    [
        StoreUnavailable("SQLite unavailable: database is locked"),
        ApiError(503, "store unavailable"),
    ],
)
def test_a_store_outage_is_not_reported(exc: Exception) -> None:
    # The health check and the metrics say the store is away; an event per request would not.
    event = {"exception": {"values": [{"type": type(exc).__name__}]}}
    assert scrub(event, {"exc_info": (type(exc), exc, None)}) is None


def test_a_real_fault_is_kept_and_scrubbed() -> None:
    exc = RuntimeError("boom")
    event = {
        "exception": {"values": [{"type": "RuntimeError", "value": "token=bt_abcdefghijkl"}]},
        "request": {"url": "http://x/v1/ingest", "query_string": "token=abc&page=2", "data": "{}"},
    }
    kept = scrub(event, {"exc_info": (RuntimeError, exc, None)})
    assert kept["request"] == {
        "url": "http://x/v1/ingest",
        "query_string": "token=[redacted]&page=2",
    }
    assert "bt_abcdefghijkl" not in str(kept)
