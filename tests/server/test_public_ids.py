"""Riders' vehicle ids: stable for an installation, whatever happens to JWT_SECRET.

A rider's app (and, next, the GTFS-Realtime feed) keys a vehicle by the id the
public stream shows. It must survive a restart and a rotated JWT_SECRET, and it
must not be guessable from the device id, so it is keyed by a secret kept with
the data rather than one from the environment.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.server.live_client import fix, live_ws, post_fixes
from tests.server.running import RunningServer, make_settings

Factory = Callable[..., RunningServer]


def _rider_id(server: RunningServer, token: str, lat: float) -> str:
    post_fixes(server.url, token, fix(lat, 9.19))
    with live_ws(server.url, "/ws/public") as public:
        [vehicle] = public.snapshot()["vehicles"]
    assert vehicle["lat"] == lat
    return str(vehicle["id"])


def test_rider_id_survives_a_restart_with_a_rotated_jwt_secret(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "data", jwt_secret="first-secret-" + "a" * 40)
    first = RunningServer(settings).start()
    try:
        _, token = first.add_device("bus-1")
        before = _rider_id(first, token, 45.1)
    finally:
        first.stop()
    rotated = RunningServer(settings.with_values(jwt_secret="second-secret-" + "b" * 40)).start()
    try:
        assert _rider_id(rotated, token, 45.2) == before
    finally:
        rotated.stop()


def test_two_installations_give_the_same_device_different_rider_ids(
    server_factory: Factory,
) -> None:
    # Same JWT_SECRET (make_settings uses one) and same device id 1, other data.
    ids = []
    for _ in range(2):
        server = server_factory()
        device, token = server.add_device("bus-1")
        assert device.id == 1
        ids.append(_rider_id(server, token, 45.3))
    assert ids[0] != ids[1]


def test_redis_without_jwt_secret_warns_that_replicas_reject_each_others_sign_ins(
    tmp_path: Path, redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    # What an operator reads in the server's log when it starts (`bustracker serve` sends
    # every logger to stderr, server/logs.py; in process, pytest's handler holds the lines).
    settings = make_settings(tmp_path / "data", redis_url=redis_url, jwt_secret_configured=False)
    with caplog.at_level(logging.WARNING):
        RunningServer(settings).start().stop()
    log = caplog.text
    assert "REDIS_URL is set but JWT_SECRET is not" in log
    assert "replicas reject each other's sign-ins" in log


def test_redis_with_jwt_secret_starts_without_that_warning(
    tmp_path: Path, redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        RunningServer(make_settings(tmp_path / "data", redis_url=redis_url)).start().stop()
    assert "JWT_SECRET" not in caplog.text
