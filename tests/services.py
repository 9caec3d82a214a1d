"""Throwaway PostgreSQL/PostGIS and Redis servers for the test suite (a pytest plugin).

Loaded from ``tests/conftest.py`` with ``pytest_plugins = ["tests.services"]``.

Fixtures:

- ``pg_cluster`` (session): a :class:`PgCluster`. A private cluster on a free loopback port,
  or the server named by ``TEST_DATABASE_URL`` (a superuser URL that may CREATE DATABASE).
  Its database ``bustracker_template`` has PostGIS installed.
- ``postgis_url`` (function): URL of a brand-new database cloned from the template,
  dropped after the test.
- ``redis_server`` (session): URL of a private ``redis-server``.
- ``redis_url`` (function): the same URL, flushed before the test.

Servers are the real thing rather than fakes, because the behaviour we depend on (unique
keys, partitions, ``geography`` casts, pub/sub) is exactly what fakes get wrong.

A missing binary skips the tests that need it, naming the Debian package to install,
except in CI (``CI=true``), where the packages are always installed and a missing one is a
broken machine that must fail loudly instead of silently skipping half the suite.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import ctypes
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Coroutine, Iterator, Sequence
from pathlib import Path
from typing import Any, NoReturn, TypeVar
from urllib.parse import urlsplit, urlunsplit

import pytest

__all__ = [
    "TEMPLATE_DB",
    "PgCluster",
    "free_port",
    "in_ci",
    "pg_cluster",
    "postgis_url",
    "redis_server",
    "redis_url",
]

TEMPLATE_DB = "bustracker_template"
STARTUP_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
# A port picked by free_port() can be taken by someone else before the server binds it.
BIND_ATTEMPTS = 3

T = TypeVar("T")

# Seconds each service took to come up, reported at the end of the run.
_startup_seconds: dict[str, float] = {}

_SERVICE_MARKERS = {
    "pg_cluster": "postgis",
    "postgis_url": "postgis",
    "redis_server": "redis",
    "redis_url": "redis",
}


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def _missing(what: str, debian_package: str) -> NoReturn:
    message = f"{what} not found: install the Debian package {debian_package}"
    if in_ci():
        pytest.fail(f"{message} (CI must have it; .ci/run installs it)", pytrace=False)
    pytest.skip(message)


def _fail_with_log(message: str, log: Path) -> NoReturn:
    try:
        text = log.read_text(errors="replace")[-8000:]
    except OSError as exc:
        text = f"(log unreadable: {exc})"
    pytest.fail(f"{message}\n--- {log} ---\n{text}", pytrace=False)


_PR_SET_PDEATHSIG = 1


def _die_with_parent(sig: signal.Signals) -> Callable[[], None] | None:
    """A preexec_fn that has the kernel send `sig` to the child when pytest dies.

    try/finally and atexit do not run when pytest is SIGKILLed, killed by SIGTERM (no Python
    handler) or ended with os._exit (pytest-timeout's thread method); this does.
    """
    if not sys.platform.startswith("linux"):
        return None
    # Resolve the symbol before fork: the child should do as little as possible.
    prctl = ctypes.CDLL(None, use_errno=True).prctl

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, int(sig))

    return preexec


class _Owner:
    """Who runs a server: ourselves, or the `postgres` user when we are root."""

    def __init__(self, username: str | None) -> None:
        self.username = username
        self.uid: int | None = None
        self.gid: int | None = None
        if username is not None:
            entry = pwd.getpwnam(username)
            self.uid, self.gid = entry.pw_uid, entry.pw_gid

    def chown(self, path: Path) -> None:
        if self.uid is not None and self.gid is not None:
            os.chown(path, self.uid, self.gid)

    def popen_kwargs(self) -> dict[str, Any]:
        # Popen switches uid/gid after fork and before preexec_fn, so the parent-death signal
        # (which the kernel clears on a credential change) survives; `runuser` would fork again.
        if self.uid is None:
            return {}
        return {"user": self.uid, "group": self.gid, "extra_groups": []}


def _run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion from sync code, even while the caller's loop runs.

    pytest-asyncio may have a loop running in this thread; a fresh thread has none.
    """
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="pg-admin") as pool:
        return pool.submit(asyncio.run, coro).result()


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


_DIR_PREFIXES = ("bustracker-pg-", "bustracker-redis-")
_OWNER_FILE = "pytest.pid"


def _session_dir(prefix: str, parent: str | None = None) -> Path:
    """A temp dir for one server, tagged with our pid so a later session can sweep it."""
    _sweep_dead_sessions()
    base = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    (base / _OWNER_FILE).write_text(str(os.getpid()))
    return base


def _sweep_dead_sessions() -> None:
    """Remove dirs left by sessions that were killed (SIGTERM from `timeout`, SIGKILL).

    Only on Linux, where the parent-death signal guarantees their servers died too.
    """
    if not sys.platform.startswith("linux"):
        return
    for parent in {Path("/tmp"), Path(tempfile.gettempdir())}:
        for base in parent.glob("bustracker-*-*"):
            if not base.name.startswith(_DIR_PREFIXES):
                continue
            try:
                pid = int((base / _OWNER_FILE).read_text())
            except (OSError, ValueError):
                continue  # Being created right now, or not ours to judge.
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                shutil.rmtree(base, ignore_errors=True)
            except PermissionError:
                pass  # Alive, run by another user.


def _run_checked(argv: Sequence[str], owner: _Owner, cwd: Path, what: str) -> None:
    result = subprocess.run(
        list(argv),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        cwd=cwd,
        **owner.popen_kwargs(),
    )
    if result.returncode != 0:
        pytest.fail(
            f"{what} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}",
            pytrace=False,
        )


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


def _redis_call(port: int, *args: str, timeout: float = 5.0) -> bytes:
    """One command over raw RESP: a sync client with no dependency and no event loop."""
    payload = f"*{len(args)}\r\n".encode()
    for arg in args:
        data = arg.encode()
        payload += b"$%d\r\n%s\r\n" % (len(data), data)
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(payload)
        reply = b""
        while not reply.endswith(b"\r\n"):
            chunk = sock.recv(4096)
            if not chunk:
                break
            reply += chunk
    return reply.strip()


class _RedisProcess:
    def __init__(self, binary: str, base: Path) -> None:
        self.binary = binary
        self.base = base
        self.log = base / "redis.log"
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, port: int) -> bool:
        """True once PING answers; False if redis-server exited (e.g. the port was taken)."""
        self.port = port
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [
                    self.binary,
                    "--port",
                    str(port),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--dir",
                    str(self.base),
                    "--logfile",
                    "",
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.base,
                preexec_fn=_die_with_parent(signal.SIGTERM),
            )
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            with contextlib.suppress(OSError):
                if _redis_call(port, "PING", timeout=1.0) == b"+PONG":
                    return True
            time.sleep(0.02)
        self.stop()
        _fail_with_log(f"redis-server not answering PING within {STARTUP_TIMEOUT:.0f} s", self.log)

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def stop_and_clean(self) -> None:
        self.stop()
        shutil.rmtree(self.base, ignore_errors=True)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[str]:
    """URL (`redis://127.0.0.1:PORT/0`) of a private redis-server for the whole session."""
    binary = shutil.which("redis-server")
    if binary is None:
        _missing("redis-server", "redis-server")
    started = time.monotonic()
    server = _RedisProcess(binary, _session_dir("bustracker-redis-"))
    atexit.register(server.stop_and_clean)
    try:
        for attempt in range(BIND_ATTEMPTS):
            if server.start(free_port()):
                break
            taken = "already in use" in server.log.read_text(errors="replace")
            if not taken or attempt == BIND_ATTEMPTS - 1:
                _fail_with_log("redis-server exited during startup", server.log)
        _startup_seconds["Redis"] = time.monotonic() - started
        yield f"redis://127.0.0.1:{server.port}/0"
    finally:
        server.stop_and_clean()
        atexit.unregister(server.stop_and_clean)


@pytest.fixture
def redis_url(redis_server: str) -> str:
    """The session Redis, emptied so this test starts from nothing."""
    port = urlsplit(redis_server).port
    assert port is not None
    reply = _redis_call(port, "FLUSHALL")
    if reply != b"+OK":
        raise RuntimeError(f"FLUSHALL answered {reply!r}")
    return redis_server


def pytest_configure(config: pytest.Config) -> None:
    registered = "\n".join(config.getini("markers"))
    for marker in sorted(set(_SERVICE_MARKERS.values())):
        if f"{marker}:" not in registered:
            config.addinivalue_line("markers", f"{marker}: needs a throwaway {marker} server")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Marking by fixture use lets `-m "not postgis"` select tests without anyone remembering
    # to add the marker by hand.
    for item in items:
        for fixture in getattr(item, "fixturenames", ()):
            marker = _SERVICE_MARKERS.get(fixture)
            if marker is not None:
                item.add_marker(marker)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _startup_seconds:
        started = ", ".join(f"{name} {secs:.2f} s" for name, secs in _startup_seconds.items())
        terminalreporter.write_line(f"service startup: {started}")
