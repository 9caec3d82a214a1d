"""`bustracker check-deployment URL` against real servers on loopback whose every check's
outcome is known: one healthy, one broken in three ways, one that is not there."""

from __future__ import annotations

import io
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from server.cli import main
from server.settings import RateLimit
from server.store import open_store
from tests.pg_service import PgCluster
from tests.server.running import RunningServer, make_settings, run_async
from tests.services import free_port

CHECKS = ["health", "migrations", "device report", "fleet live", "live stream", "pwa", "rate limit"]


@pytest.fixture(scope="module")
def database(pg_cluster: PgCluster) -> Iterator[str]:
    name = pg_cluster.create_database()
    yield pg_cluster.url(name)
    pg_cluster.drop_database(name)


def _server(tmp: Path, database: str, **settings: Any) -> RunningServer:
    return RunningServer(make_settings(tmp, database, **settings))


@pytest.fixture(scope="module")
def healthy(tmp_path_factory: pytest.TempPathFactory, database: str) -> Iterator[RunningServer]:
    server = _server(
        tmp_path_factory.mktemp("healthy"), database, rate_limit_telemetry=RateLimit(3, 60)
    )
    server.start()
    server.add_user("checker", "correct horse battery", "viewer")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def broken(tmp_path_factory: pytest.TempPathFactory, database: str) -> Iterator[RunningServer]:
    # A telemetry limit a burst of 200 never reaches.
    server = _server(
        tmp_path_factory.mktemp("broken"), database, rate_limit_telemetry=RateLimit(100000, 60)
    )
    yield server.start()
    server.stop()


def check(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    url: str,
    database: str | None,
    *args: str,
    password: str = "",
) -> tuple[int, dict[str, tuple[str, str]]]:
    if database:
        monkeypatch.setenv("DATABASE_URL", database)
    else:
        monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setattr("sys.stdin", io.StringIO(password + "\n"))
    code = main(["check-deployment", url, *args])
    out = capsys.readouterr().out
    lines = {}
    for line in out.splitlines():
        if line.startswith("["):
            outcome, rest = line[1:].split("]", 1)
            name, detail = rest.strip().split(": ", 1)
            lines[name] = (outcome.strip(), detail)
    assert list(lines) == CHECKS, out
    return code, lines


def _device(server: RunningServer, name: str) -> str:
    return server.add_device(name)[1]


def test_a_healthy_deployment_passes_every_check(
    healthy: RunningServer,
    database: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    token = _device(healthy, "check-healthy")
    code, lines = check(
        monkeypatch,
        capsys,
        healthy.url,
        database,
        *("--device-token", token, "--username", "checker", "--password-stdin"),
        password="correct horse battery",
    )
    assert {name: outcome for name, (outcome, _) in lines.items()} == dict.fromkeys(CHECKS, "ok")
    assert code == 0
    assert "check-healthy" in lines["fleet live"][1]  # our sample fix, found by its time
    assert lines["rate limit"][1].startswith("429 after 3 reports")  # 3/minute: the 3rd is over


def test_a_broken_deployment_names_each_failing_check(
    broken: RunningServer,
    database: str,
    pg_cluster: PgCluster,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # This machine's settings name a database one migration behind.
    stale = pg_cluster.create_database()
    try:
        run_async(open_store(pg_cluster.url(stale), Path("unused")).migrate)
        subprocess.run(
            [
                "psql",
                "-q",
                "-d",
                pg_cluster.url(stale),
                "-c",
                "DELETE FROM schema_migrations"
                " WHERE version = (SELECT max(version) FROM schema_migrations)",
            ],
            check=True,
        )
        token = _device(broken, "check-broken")
        code, lines = check(
            monkeypatch, capsys, broken.url, pg_cluster.url(stale), "--device-token", token
        )
    finally:
        pg_cluster.drop_database(stale)
    outcomes = {name: outcome for name, (outcome, _) in lines.items()}
    assert outcomes == {
        "health": "ok",
        "migrations": "FAIL",
        "device report": "ok",
        "fleet live": "skip",  # no operator given: skipped, never passed
        "live stream": "ok",
        "pwa": "ok",  # the real PWA is there; the absent server below fails it
        "rate limit": "FAIL",
    }
    assert code == 1
    assert lines["migrations"][1].startswith("not applied: 0")
    assert "no 429 after 200 reports" in lines["rate limit"][1]


def test_no_server_fails_every_check_that_needs_one(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, lines = check(monkeypatch, capsys, f"http://127.0.0.1:{free_port()}", None)
    assert code == 1
    assert lines["health"][0] == "FAIL" and "ConnectError" in lines["health"][1]
    assert lines["live stream"][0] == "FAIL"
    assert lines["pwa"][0] == "FAIL"
    assert {lines[n][0] for n in ("migrations", "device report", "fleet live", "rate limit")} == {
        "skip"
    }
