"""A real bustracker server on loopback for tests: uvicorn in a thread, real store."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import uvicorn
from litestar import Litestar
from litestar.handlers import BaseRouteHandler

from server.app import create_app
from server.auth import hash_device_token, hash_password, new_device_token
from server.model import Device, Role, User
from server.serving import uvicorn_options
from server.settings import Settings
from server.store import open_store
from server.store.base import Store
from tests.services import free_port

T = TypeVar("T")


def run_async(work: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine to completion from sync code, even inside an async test."""
    result: list[T] = []
    errors: list[BaseException] = []

    def target() -> None:
        try:
            result.append(asyncio.run(work()))  # type: ignore[arg-type]
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if errors:
        raise errors[0]
    return result[0]


@dataclass
class RunningServer:
    settings: Settings
    url: str = ""
    _server: uvicorn.Server | None = None
    _thread: threading.Thread | None = None
    tokens: dict[str, str] = field(default_factory=dict)
    # Routes added to the app for a test (say, one that declares no access rule).
    extra_handlers: list[BaseRouteHandler] = field(default_factory=list)
    app: Litestar | None = None

    def _with_store(self, work: Callable[[Store], Awaitable[T]]) -> T:
        async def run() -> T:
            store = open_store(self.settings.store.database_url, self.settings.store.data_dir)
            await store.open()
            try:
                return await work(store)
            finally:
                await store.close()

        return run_async(run)

    def add_device(self, name: str, route: str | None = None) -> tuple[Device, str]:
        token = new_device_token()
        device = self._with_store(lambda s: s.add_device(name, hash_device_token(token), route))
        return device, token

    def add_user(self, name: str, password: str, role: Role = "admin") -> User:
        return self._with_store(lambda s: s.add_user(name, hash_password(password), role))

    def login(self, name: str, password: str) -> str:
        r = httpx.post(f"{self.url}/v1/auth/login", json={"username": name, "password": password})
        r.raise_for_status()
        token: str = r.json()["access_token"]
        return token

    def operator(self, role: Role = "admin") -> dict[str, str]:
        """Headers of a signed-in operator with ``role`` (created on first use)."""
        if role not in self.tokens:
            self.add_user(f"op-{role}", "correct horse battery", role)
            self.tokens[role] = self.login(f"op-{role}", "correct horse battery")
        return {"Authorization": f"Bearer {self.tokens[role]}"}

    def start(self) -> RunningServer:
        # Schema first, as `bustracker migrate` does before a PostGIS server starts.
        run_async(
            open_store(self.settings.store.database_url, self.settings.store.data_dir).migrate
        )
        port = free_port()
        self.app = create_app(self.settings)
        for handler in self.extra_handlers:
            self.app.register(handler)
        config = uvicorn.Config(
            self.app,
            host="127.0.0.1",
            port=port,
            lifespan="on",
            **{**uvicorn_options(self.settings), "log_level": "warning"},
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("test server did not start")
            time.sleep(0.02)
        self.url = f"http://127.0.0.1:{port}"
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=15)


def make_settings(data_dir: Path, database_url: str | None = None, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "data_dir": data_dir,
        "database_url": database_url,
        "jwt_secret": "test-secret-" + "x" * 40,
        "jwt_secret_configured": True,
    }
    return Settings().with_values(**{**values, **overrides})


def server_per_store(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, name: str
) -> Iterator[RunningServer]:
    """One server for a module parametrized ``sqlite``/``postgis`` (``request.param``).

    PostGIS gets a database of its own, dropped after. Use it from a module fixture:
    ``yield from server_per_store(request, tmp_path_factory, "transit")``.
    """
    cluster = None if request.param == "sqlite" else request.getfixturevalue("pg_cluster")
    dbname = cluster.create_database() if cluster else None
    url = cluster.url(dbname) if cluster and dbname else None
    running = RunningServer(make_settings(tmp_path_factory.mktemp(name) / "data", url)).start()
    try:
        yield running
    finally:
        running.stop()
        if cluster and dbname:
            cluster.drop_database(dbname)
