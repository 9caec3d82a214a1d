"""Fixtures for server tests: a real server on loopback over a real store."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.server.running import RunningServer, make_settings


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator[Callable[..., RunningServer]]:
    started: list[RunningServer] = []

    def start(database_url: str | None = None, **overrides: Any) -> RunningServer:
        # A test may seed a SQLite file first and pass its data_dir.
        data_dir = overrides.pop("data_dir", tmp_path / f"data{len(started)}")
        running = RunningServer(make_settings(data_dir, database_url, **overrides)).start()
        started.append(running)
        return running

    yield start
    for running in started:
        running.stop()


@pytest.fixture
def server(server_factory: Callable[..., RunningServer]) -> RunningServer:
    """A server on the embedded default store (SQLite)."""
    return server_factory()


@pytest.fixture(params=["sqlite", "postgis"])
def any_server(
    request: pytest.FixtureRequest, server_factory: Callable[..., RunningServer]
) -> RunningServer:
    """The same server on each store, for API tests that must hold on both."""
    if request.param == "sqlite":
        return server_factory()
    return server_factory(request.getfixturevalue("postgis_url"))
