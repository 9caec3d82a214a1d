"""A PostgreSQL streaming standby of the test cluster: ``pg_basebackup -R`` on a free port.

For the read-replica tests. Replication needs the cluster's files and
binaries, so it is made only from the private cluster; with
``TEST_DATABASE_URL`` the tests that need it skip.
"""

from __future__ import annotations

import contextlib
import shutil
import time
from collections.abc import Iterator

import pytest

from tests.pg_service import PgCluster, _LocalCluster
from tests.service_procs import (
    STARTUP_TIMEOUT,
    _fail_with_log,
    _run_checked,
    _session_dir,
    free_port,
)


class Standby(_LocalCluster):
    """A hot standby; ``stop()`` takes it away (an outage), ``pause()`` stops its replay."""

    def _wait_ready(self) -> None:
        # Once a hot standby takes read-only connections: "ready" or "standby"
        # depending on the PostgreSQL version.
        assert self.process is not None
        pidfile = self.datadir / "postmaster.pid"
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return
            with contextlib.suppress(OSError):
                lines = pidfile.read_text().splitlines()
                if len(lines) >= 8 and lines[7].strip() in {"ready", "standby"}:
                    return
            time.sleep(0.05)
        self.stop()
        _fail_with_log(f"standby not ready within {STARTUP_TIMEOUT:.0f} s", self.log)

    def wait_replayed(self, dbname: str, timeout: float = 30.0) -> None:
        """Until the standby has replayed all the WAL it received, and knows ``dbname``."""
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(Exception):
                if self.fetchval(
                    "SELECT pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn()", dbname=dbname
                ):
                    return
            assert time.monotonic() < deadline, "the standby never caught up"
            time.sleep(0.05)

    def wait_received_unreplayed(self, dbname: str, timeout: float = 30.0) -> None:
        """Until the standby holds WAL it has not replayed (replay paused, primary wrote)."""
        deadline = time.monotonic() + timeout
        while not self.fetchval(
            "SELECT pg_last_wal_receive_lsn() > pg_last_wal_replay_lsn()", dbname=dbname
        ):
            assert time.monotonic() < deadline, "no WAL reached the paused standby"
            time.sleep(0.05)


@pytest.fixture(scope="module")
def pg_standby(pg_cluster: PgCluster) -> Iterator[Standby]:
    """A streaming standby of ``pg_cluster``, for one test module."""
    if not isinstance(pg_cluster, _LocalCluster):
        pytest.skip("a streaming standby is made only from the private test cluster")
    owner = pg_cluster.owner
    base = _session_dir("bustracker-standby-", "/tmp" if owner.uid is not None else None)
    owner.chown(base)
    standby: Standby | None = None
    try:
        _run_checked(
            [
                str(pg_cluster.bindir / "pg_basebackup"),
                *("-h", pg_cluster.host, "-p", str(pg_cluster.port), "-U", "postgres"),
                *("-D", str(base / "data"), "-R", "-X", "stream", "--checkpoint=fast"),
                "--no-sync",
            ],
            owner,
            base,
            "pg_basebackup",
        )
        standby = Standby(pg_cluster.bindir, base, free_port(), owner)
        standby.start()
        if not standby.running:
            _fail_with_log("the standby exited during startup", standby.log)
        yield standby
    finally:
        if standby is not None:
            standby.stop()
        shutil.rmtree(base, ignore_errors=True)
