"""A throwaway PgBouncer in transaction pooling in front of the test cluster (Debian's pgbouncer).

Few server connections on purpose (``SERVER_CONNECTIONS``): many client
connections then share them, and a client's consecutive transactions really
do land on different server connections, which is what breaks named
prepared statements and session state.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from tests.pg_service import PgCluster
from tests.service_procs import (
    STARTUP_TIMEOUT,
    _die_with_parent,
    _fail_with_log,
    _missing,
    _Owner,
    _session_dir,
    free_port,
)

SERVER_CONNECTIONS = 2


def _binary() -> str:
    found = shutil.which("pgbouncer") or next(
        (p for p in ("/usr/sbin/pgbouncer", "/usr/bin/pgbouncer") if Path(p).exists()), None
    )
    if found is None:
        _missing("pgbouncer", "pgbouncer")
    return found


@pytest.fixture(scope="module")
def pgbouncer(pg_cluster: PgCluster) -> Iterator[str]:
    """``postgresql://`` URL prefix of a PgBouncer (transaction mode); add ``/dbname``."""
    binary = _binary()
    # Like PostgreSQL, PgBouncer refuses to run as root.
    owner = _Owner("postgres") if os.geteuid() == 0 else _Owner(None)
    base = _session_dir("bustracker-pgb-", "/tmp" if owner.uid is not None else None)
    owner.chown(base)
    parts = urlsplit(pg_cluster.admin_url)
    user = parts.username or "postgres"
    password = f" password={parts.password}" if parts.password else ""
    port = free_port()
    ini = base / "pgbouncer.ini"
    ini.write_text(
        "[databases]\n"
        f"* = host={pg_cluster.host} port={pg_cluster.port} user={user}{password}\n"
        "[pgbouncer]\n"
        f"listen_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n"
        "auth_type = any\npool_mode = transaction\n"
        f"default_pool_size = {SERVER_CONNECTIONS}\nmax_client_conn = 200\n"
        f"logfile = {base / 'pgbouncer.log'}\n"
    )
    owner.chown(ini)
    process = subprocess.Popen(
        [binary, str(ini)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
        cwd=base,
        preexec_fn=_die_with_parent(signal.SIGTERM),
        **owner.popen_kwargs(),
    )
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while True:
            if process.poll() is not None:
                _fail_with_log("pgbouncer exited during startup", base / "pgbouncer.log")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                break
            if time.monotonic() > deadline:
                _fail_with_log("pgbouncer not listening", base / "pgbouncer.log")
            time.sleep(0.05)
        netloc = f"{user}@127.0.0.1:{port}"
        yield urlunsplit(("postgresql", netloc, "", "", ""))
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        shutil.rmtree(base, ignore_errors=True)
