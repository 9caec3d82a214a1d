"""The throwaway services behave the way the rest of the suite relies on."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import pytest
import redis

from tests import service_procs
from tests.services import TEMPLATE_DB, PgCluster, free_port

REPO = Path(__file__).resolve().parent.parent


def test_free_port_can_be_bound() -> None:
    port = free_port()
    assert 1024 <= port <= 65535
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


def test_cluster_urls(pg_cluster: PgCluster) -> None:
    if not os.environ.get("TEST_DATABASE_URL"):
        assert pg_cluster.admin_url == f"postgresql://postgres@127.0.0.1:{pg_cluster.port}/postgres"
    assert pg_cluster.url("somedb") == pg_cluster.admin_url.rsplit("/", 1)[0] + "/somedb"
    template = f"SELECT count(*) FROM pg_database WHERE datname = '{TEMPLATE_DB}'"
    assert pg_cluster.fetchval(template) == 1


async def test_postgis_answers_from_an_async_test(postgis_url: str) -> None:
    # The fixture is sync; this proves it works while pytest-asyncio's loop is running.
    conn = await asyncpg.connect(postgis_url)
    try:
        assert (await conn.fetchval("SELECT postgis_version()")).startswith("3")
        metres = await conn.fetchval(
            "SELECT ST_Distance("
            " ST_SetSRID(ST_MakePoint(9.1909, 45.4651), 4326)::geography,"
            " ST_SetSRID(ST_MakePoint(9.1900, 45.4642), 4326)::geography)"
        )
        assert 110 < metres < 135  # ~100 m north-south and ~70 m east-west in Milan
    finally:
        await conn.close()


def test_postgis_url_names_a_private_database(postgis_url: str, pg_cluster: PgCluster) -> None:
    parts = urlsplit(postgis_url)
    name = parts.path.lstrip("/")
    assert re.fullmatch(r"t_[0-9a-f]{32}", name)
    assert (parts.hostname, parts.port) == (pg_cluster.host, pg_cluster.port)
    assert pg_cluster.fetchval("SELECT current_database()", dbname=name) == name
    assert pg_cluster.fetchval("SELECT postgis_version()", dbname=name).startswith("3")


@pytest.mark.parametrize("run", [1, 2])
async def test_each_test_gets_an_empty_database(postgis_url: str, run: int) -> None:
    # Whichever run goes second would find the first one's table if databases were shared.
    conn = await asyncpg.connect(postgis_url)
    try:
        own_tables = await conn.fetchval(
            "SELECT count(*) FROM information_schema.tables"
            " WHERE table_schema = 'public' AND table_type = 'BASE TABLE'"
            " AND table_name <> 'spatial_ref_sys'"
        )
        assert own_tables == 0
        await conn.execute("CREATE TABLE leftover (run int)")
        await conn.execute("INSERT INTO leftover VALUES ($1)", run)
    finally:
        await conn.close()


def test_writes_never_reach_the_template_and_drop_removes_the_database(
    pg_cluster: PgCluster,
) -> None:
    name = pg_cluster.create_database()
    pg_cluster.execute("CREATE TABLE scratch (id int)", dbname=name)
    pg_cluster.drop_database(name)
    assert pg_cluster.fetchval(f"SELECT count(*) FROM pg_database WHERE datname = '{name}'") == 0
    assert pg_cluster.fetchval("SELECT to_regclass('public.scratch') IS NULL", dbname=TEMPLATE_DB)


async def test_drop_does_not_wait_for_a_leaked_connection(pg_cluster: PgCluster) -> None:
    name = pg_cluster.create_database()
    leaked = await asyncpg.connect(pg_cluster.url(name))
    try:
        pg_cluster.drop_database(name)
    finally:
        leaked.terminate()
    assert pg_cluster.fetchval(f"SELECT count(*) FROM pg_database WHERE datname = '{name}'") == 0


def test_redis_answers_ping(redis_url: str) -> None:
    assert re.fullmatch(r"redis://127\.0\.0\.1:\d+/0", redis_url)
    client = redis.Redis.from_url(redis_url)
    try:
        assert client.ping()
    finally:
        client.close()


@pytest.mark.parametrize("run", [1, 2])
def test_each_test_gets_an_empty_redis(redis_url: str, run: int) -> None:
    client = redis.Redis.from_url(redis_url)
    try:
        assert client.dbsize() == 0
        client.set("leftover", run)
    finally:
        client.close()


def test_service_tests_are_marked_automatically(
    request: pytest.FixtureRequest, postgis_url: str, redis_url: str
) -> None:
    assert request.node.get_closest_marker("postgis") is not None
    assert request.node.get_closest_marker("redis") is not None


def test_missing_binary_skips_on_a_laptop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="Debian package redis-server"):
        service_procs._missing("redis-server", "redis-server")


def test_missing_binary_fails_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="Debian package redis-server"):
        service_procs._missing("redis-server", "redis-server")


def test_startup_failure_reports_the_server_log(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    log.write_text("FATAL:  could not create lock file\n")
    with pytest.raises(pytest.fail.Exception, match="could not create lock file"):
        service_procs._fail_with_log("did not start", log)


# A session of its own, in a child pytest, so we can watch what it leaves behind.
INNER_TEST = """
import json, os, signal
from pathlib import Path
import redis

def _children(pid):
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found

def test_record(pg_cluster, postgis_url, redis_url):
    client = redis.Redis.from_url(redis_url)
    report = {
        "pg_port": pg_cluster.port,
        "postgis": pg_cluster.fetchval(
            "SELECT postgis_version()", dbname=postgis_url.rsplit("/", 1)[1]),
        "db": postgis_url.rsplit("/", 1)[1],
        "redis_pid": client.info("server")["process_id"],
        "redis_dir": client.config_get("dir")["dir"],
    }
    client.close()
    process = getattr(pg_cluster, "process", None)
    if process is not None:
        report["pg_pids"] = [process.pid, *_children(process.pid)]
        report["pg_dir"] = str(pg_cluster.base)
    Path(os.environ["SERVICES_REPORT"]).write_text(json.dumps(report))
    if os.environ.get("SERVICES_DIE"):
        os.kill(os.getpid(), signal.SIGKILL)
"""


def _run_inner_session(tmp_path: Path, **env: str) -> tuple[subprocess.CompletedProcess[str], Any]:
    test_file = tmp_path / "test_inner.py"
    test_file.write_text(INNER_TEST)
    report = tmp_path / "report.json"
    child_env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "SERVICES_REPORT": str(report),
        # Third-party plugins (schemathesis, playwright...) cost seconds to load and add nothing.
        "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1",
        **env,
    }
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "tests.services",
            "-p",
            "no:cacheprovider",
            "--rootdir",
            str(tmp_path),
            str(test_file),
        ],
        cwd=tmp_path,
        env=child_env,
        capture_output=True,
        text=True,
        timeout=90,
        stdin=subprocess.DEVNULL,
    )
    assert report.exists(), result.stdout + result.stderr
    return result, json.loads(report.read_text())


def _alive(pid: int) -> bool:
    # A zombie is dead for our purpose: some containers' init never reaps orphans.
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in {"Z", "X"}


def _wait_all_dead(pids: list[int], timeout: float = 15.0) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        alive = [pid for pid in pids if _alive(pid)]
        if not alive:
            return []
        time.sleep(0.1)
    return alive


needs_proc = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")


@needs_proc
def test_a_session_leaves_no_process_and_no_directory(tmp_path: Path) -> None:
    result, report = _run_inner_session(tmp_path, TEST_DATABASE_URL="")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "service startup: PostGIS cluster" in result.stdout
    pids = [*report["pg_pids"], report["redis_pid"]]
    assert _wait_all_dead(pids, timeout=2.0) == []
    assert not Path(report["pg_dir"]).exists()
    assert not Path(report["redis_dir"]).exists()


@needs_proc
def test_a_killed_session_takes_its_servers_with_it(tmp_path: Path) -> None:
    # SIGKILL runs no finally and no atexit: only the parent-death signal can clean up.
    result, report = _run_inner_session(tmp_path, TEST_DATABASE_URL="", SERVICES_DIE="1")
    assert result.returncode == -signal.SIGKILL
    dirs = [Path(report["pg_dir"]), Path(report["redis_dir"])]
    try:
        assert _wait_all_dead([*report["pg_pids"], report["redis_pid"]]) == []
        # What SIGKILL leaves is the temp dirs; the next session sweeps them.
        assert all(d.exists() for d in dirs)
        service_procs._sweep_dead_sessions()
        assert not any(d.exists() for d in dirs)
    finally:
        subprocess.run(["rm", "-rf", *map(str, dirs)], check=False)


def test_test_database_url_is_used_instead_of_starting_a_cluster(
    pg_cluster: PgCluster, tmp_path: Path
) -> None:
    before = pg_cluster.fetchval("SELECT count(*) FROM pg_database WHERE datname LIKE 't\\_%'")
    result, report = _run_inner_session(tmp_path, TEST_DATABASE_URL=pg_cluster.admin_url)
    assert result.returncode == 0, result.stdout + result.stderr
    assert report["pg_port"] == pg_cluster.port
    assert "pg_pids" not in report
    assert report["postgis"].startswith("3")
    after = pg_cluster.fetchval("SELECT count(*) FROM pg_database WHERE datname LIKE 't\\_%'")
    assert after == before
