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

from typing import Any

import pytest

from tests.pg_service import PgCluster, pg_cluster, postgis_url
from tests.redis_service import redis_server, redis_url
from tests.service_procs import TEMPLATE_DB, _startup_seconds, free_port, in_ci

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

_SERVICE_MARKERS = {
    "pg_cluster": "postgis",
    "postgis_url": "postgis",
    "redis_server": "redis",
    "redis_url": "redis",
}


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
