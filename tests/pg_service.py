"""A throwaway PostgreSQL cluster with PostGIS for the test suite, or TEST_DATABASE_URL."""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

from tests.service_procs import (
    BIND_ATTEMPTS,
    STARTUP_TIMEOUT,
    STOP_TIMEOUT,
    TEMPLATE_DB,
    _die_with_parent,
    _fail_with_log,
    _missing,
    _Owner,
    _run_checked,
    _run_sync,
    _session_dir,
    _startup_seconds,
    free_port,
)


class PgCluster:
    """A PostgreSQL server the tests may create and drop databases on."""

    def __init__(self, base_url: str, template: str = TEMPLATE_DB) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in {"postgresql", "postgres"} or not parts.hostname:
            raise ValueError(f"not a postgresql:// URL with a host: {base_url!r}")
        self._parts = parts
        self.admin_url = base_url
        self.host: str = parts.hostname
        self.port: int = parts.port or 5432
        self.template = template
        # Set by prepare_template once the server version is known.
        self._clone_strategy = ""

    def url(self, dbname: str) -> str:
        """The admin URL pointed at another database (credentials and query kept)."""
        return urlunsplit(self._parts._replace(path="/" + dbname))

    def execute(self, *statements: str, dbname: str | None = None) -> None:
        """Run statements one by one, each in autocommit (CREATE DATABASE needs that)."""
        self._run(dbname, statements, fetch=False)

    def fetchval(self, query: str, dbname: str | None = None) -> Any:
        return self._run(dbname, [query], fetch=True)

    def _run(self, dbname: str | None, statements: Sequence[str], fetch: bool) -> Any:
        url = self.url(dbname) if dbname else self.admin_url

        async def run() -> Any:
            # Imported late: collecting agent-only tests should not pay for asyncpg.
            import asyncpg

            conn = await asyncpg.connect(url, timeout=STARTUP_TIMEOUT)
            try:
                result = None
                for statement in statements:
                    if fetch:
                        result = await conn.fetchval(statement)
                    else:
                        # The simple-query protocol, which CREATE/DROP DATABASE accept.
                        await conn.execute(statement)
                return result
            finally:
                await conn.close()

        return _run_sync(run())

    def create_database(self, template: str | None = None) -> str:
        """A new database (PostGIS-ready by default) with a unique name; returns the name."""
        name = f"t_{uuid.uuid4().hex}"
        source = template or self.template
        self.execute(f'CREATE DATABASE "{name}" TEMPLATE "{source}"{self._clone_strategy}')
        return name

    def drop_database(self, name: str) -> None:
        # FORCE: a test that leaked a pool must not make the next test's teardown hang or fail.
        self.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def server_major(self) -> int:
        return int(self.fetchval("SHOW server_version_num")) // 10000

    def prepare_template(self, postgis_package: str) -> None:
        if self.server_major() >= 15:
            # PostgreSQL 15's default (WAL_LOG) writes the whole template through the WAL;
            # copying the files is faster for a small template (measured: ~40 vs ~55 ms).
            self._clone_strategy = " STRATEGY FILE_COPY"
        exists = self.fetchval(f"SELECT 1 FROM pg_database WHERE datname = '{self.template}'")
        if not exists:
            self.execute(f'CREATE DATABASE "{self.template}"')
        try:
            self.execute("CREATE EXTENSION IF NOT EXISTS postgis", dbname=self.template)
        except Exception as exc:
            text = str(exc)
            if "postgis" in text and ("control file" in text or "not available" in text):
                _missing("the PostGIS extension", postgis_package)
            raise


class _LocalCluster(PgCluster):
    """A private cluster in a temp dir, run by the `postgres` user when we are root."""

    def __init__(self, bindir: Path, base: Path, port: int, owner: _Owner) -> None:
        super().__init__(f"postgresql://postgres@127.0.0.1:{port}/postgres")
        self.bindir = bindir
        self.base = base
        self.datadir = base / "data"
        self.log = base / "postgres.log"
        self.owner = owner
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        settings = {
            "listen_addresses": "127.0.0.1",
            # Durability buys nothing for a cluster deleted at the end of the run.
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
        }
        argv = [str(self.bindir / "postgres"), "-D", str(self.datadir), "-p", str(self.port)]
        argv += ["-k", str(self.base)]
        for name, value in settings.items():
            argv += ["-c", f"{name}={value}"]
        # Truncated per attempt, so a retry judges (and reports) only its own output.
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.base,
                # SIGQUIT is PostgreSQL's immediate shutdown (what `pg_ctl stop -m immediate`
                # sends); SIGTERM would wait for every client to disconnect.
                preexec_fn=_die_with_parent(signal.SIGQUIT),
                **self.owner.popen_kwargs(),
            )
        self._wait_ready()

    def _wait_ready(self) -> None:
        # Running `postgres` in the foreground (not `pg_ctl start`, which detaches it) keeps it
        # our child, so the parent-death signal applies; we poll the same "ready" status line
        # of postmaster.pid that `pg_ctl -w` polls.
        assert self.process is not None
        pidfile = self.datadir / "postmaster.pid"
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return
            with contextlib.suppress(OSError):
                lines = pidfile.read_text().splitlines()
                if len(lines) >= 8 and lines[7].strip() == "ready":
                    return
            time.sleep(0.05)
        self.stop()
        _fail_with_log(f"PostgreSQL not ready within {STARTUP_TIMEOUT:.0f} s", self.log)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGQUIT)
            try:
                process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _pg_bindir() -> Path | None:
    """The newest server bindir, preferring one that has PostGIS.

    `pg_config --bindir` is unreliable here: on Debian it comes with the client library and
    may name a version without a server.
    """
    debian = Path("/usr/lib/postgresql")
    versions = sorted(
        (d for d in debian.glob("*") if (d / "bin" / "initdb").exists() and d.name.isdigit()),
        key=lambda d: int(d.name),
    )
    with_postgis = [
        d
        for d in versions
        if Path(f"/usr/share/postgresql/{d.name}/extension/postgis.control").exists()
    ]
    if with_postgis or versions:
        return (with_postgis or versions)[-1] / "bin"
    # Non-Debian layouts (Homebrew, Fedora) put the server binaries on PATH.
    initdb = shutil.which("initdb")
    if initdb and (Path(initdb).parent / "postgres").exists():
        return Path(initdb).parent
    return None


def _start_local_cluster() -> _LocalCluster:
    bindir = _pg_bindir()
    if bindir is None:
        _missing("PostgreSQL server binaries (initdb, postgres)", "postgresql")
    owner = _Owner(None)
    if os.geteuid() == 0:
        # PostgreSQL refuses to run as root.
        try:
            owner = _Owner("postgres")
        except KeyError:
            _missing("the 'postgres' system user", "postgresql")
    # As root, stay out of $TMPDIR: it may sit under a directory `postgres` cannot enter.
    tmp_root = "/tmp" if owner.uid is not None else None
    base = _session_dir("bustracker-pg-", tmp_root)
    cluster: _LocalCluster | None = None
    try:
        owner.chown(base)
        _run_checked(
            [
                str(bindir / "initdb"),
                "-D",
                str(base / "data"),
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                # The C locale exists everywhere; a host locale may be missing on a CI image.
                "--locale=C",
                "--no-sync",
                "--no-instructions",
            ],
            owner,
            base,
            "initdb",
        )
        for attempt in range(BIND_ATTEMPTS):
            cluster = _LocalCluster(bindir, base, free_port(), owner)
            cluster.start()
            if cluster.running:
                return cluster
            log = cluster.log.read_text(errors="replace")
            if "already in use" not in log or attempt == BIND_ATTEMPTS - 1:
                _fail_with_log("PostgreSQL exited during startup", cluster.log)
        raise AssertionError("unreachable")
    except BaseException:
        if cluster is not None:
            cluster.stop()
        shutil.rmtree(base, ignore_errors=True)
        raise


def _stop_local_cluster(cluster: _LocalCluster) -> None:
    cluster.stop()
    shutil.rmtree(cluster.base, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    """A PostgreSQL server with a `bustracker_template` database that has PostGIS."""
    external = os.environ.get("TEST_DATABASE_URL")
    started = time.monotonic()
    if external:
        cluster = PgCluster(external)
        cluster.prepare_template(f"postgresql-{cluster.server_major()}-postgis-3 on that server")
        _startup_seconds["PostGIS (TEST_DATABASE_URL)"] = time.monotonic() - started
        yield cluster
        return

    local = _start_local_cluster()
    # Backup for teardown paths that skip fixture finalizers; stop is idempotent.
    atexit.register(_stop_local_cluster, local)
    try:
        local.prepare_template(f"postgresql-{local.server_major()}-postgis-3")
        _startup_seconds["PostGIS cluster"] = time.monotonic() - started
        yield local
    finally:
        _stop_local_cluster(local)
        atexit.unregister(_stop_local_cluster)


@pytest.fixture
def postgis_url(pg_cluster: PgCluster) -> Iterator[str]:
    """URL of a fresh database with PostGIS, private to this test and dropped after it."""
    name = pg_cluster.create_database()
    try:
        yield pg_cluster.url(name)
    finally:
        pg_cluster.drop_database(name)
