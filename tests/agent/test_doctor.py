"""``bustracker-agent doctor`` against real things: gpsd (gpsfake) playing a route,
the real server on loopback with a real device token, and the unit's own disk.

The clock check asks the kernel (adjtimex) on a Pi; this machine's clock state
isn't the test's to set, so those tests inject the answer, and the command-line
test forces it with ``filter.system_clock``, which the check reports as forced.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from agent.cli import main
from agent.doctor import Check, as_text, run_checks
from agent.simulate import write_route
from tests.agent.conftest import BareGpsd, GpsFake, PtyPair
from tests.server.running import RunningServer, make_settings
from tests.services import free_port


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningServer, str]]:
    running = RunningServer(make_settings(tmp_path_factory.mktemp("served"))).start()
    _, token = running.add_device("bus 12")
    yield running, token
    running.stop()


def write_config(tmp_path: Path, url: str, token: str | None, **sections: dict[str, Any]) -> Path:
    tmp_path.mkdir(exist_ok=True)
    if token is not None:
        (tmp_path / "device-token").write_text(token + "\n")
    data: dict[str, dict[str, Any]] = {
        "server": {"url": url, "token_file": str(tmp_path / "device-token")},
        "gps": {"port": free_port(), "connect_timeout_s": 0.2, "reconnect_delay_s": 0.1},
        "buffer": {"path": str(tmp_path / "state" / "buffer.sqlite3")},
        "upload": {"connect_timeout_s": 2, "read_timeout_s": 5},
    }
    for name, values in sections.items():
        data.setdefault(name, {}).update(values)
    lines = []
    for name, values in data.items():
        lines.append(f"[{name}]")
        lines += [f"{k} = {json.dumps(v)}" for k, v in values.items()]
    path = tmp_path / "agent.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def by_name(checks: list[Check]) -> dict[str, Check]:
    return {c.name: c for c in checks}


def test_a_ready_unit_passes_every_check(
    tmp_path: Path, server: tuple[RunningServer, str], gpsfake: GpsFake
) -> None:
    running, token = server
    # With GSV, as receivers send: gpsd's satellite count comes from it.
    start = datetime.now(UTC).replace(microsecond=0)
    route = write_route(tmp_path / "route.nmea", 3, start, 600, gsv=True)
    _, port = gpsfake(route, cycle=0.02)
    cfg = write_config(tmp_path, running.url, token, gps={"port": port})
    checks = run_checks(cfg, {}, gps_wait_s=10, clock_synced=lambda: True)
    assert all(c.ok for c in checks), as_text(checks)
    names = [c.name for c in checks]
    assert names == [
        "config", "gps device", "gps fix", "time", "disk", "leds", "token", "server", "token valid"
    ]  # fmt: skip
    found = by_name(checks)
    assert found["gps fix"].detail.startswith(("3D fix", "2D fix"))
    assert re.search(r"fix, \d+ satellites at", found["gps fix"].detail)
    assert "HTTP 200" in found["token valid"].detail
    assert "reading /dev/" in found["gps device"].detail  # gpsfake's pty, from DEVICES
    assert as_text(checks).endswith("all checks passed")


def test_refused_token_offline_server_and_no_gps(
    tmp_path: Path, server: tuple[RunningServer, str]
) -> None:
    running, _ = server
    cfg = write_config(tmp_path, running.url, "bt_not-a-real-token")
    found = by_name(run_checks(cfg, {}, gps_wait_s=0.5, clock_synced=lambda: False))
    assert not found["token valid"].ok and "HTTP 401" in found["token valid"].detail
    assert "enrollment code" in found["token valid"].fix
    assert found["server"].ok and found["token"].ok  # the file was read; the server said no
    assert not found["gps device"].ok and "systemctl status gpsd" in found["gps device"].fix
    # Why: nothing listens on gps.port (the free port write_config picked).
    assert "Connection refused" in found["gps device"].detail
    assert not found["gps fix"].ok
    assert not found["time"].ok and "chronyc sources" in found["time"].fix
    cfg = write_config(tmp_path / "x", f"http://127.0.0.1:{free_port()}", None)
    found = by_name(run_checks(cfg, {}, gps_wait_s=0.2, clock_synced=lambda: True))
    assert not found["server"].ok and "modem" in found["server"].fix
    assert not found["token"].ok and "bustracker-agent enroll" in found["token"].fix
    assert not found["token valid"].ok


def test_gpsd_without_a_receiver_is_not_a_missing_sky(
    tmp_path: Path, server: tuple[RunningServer, str], bare_gpsd: BareGpsd
) -> None:
    # A real gpsd with no device: it answers clients, so only its DEVICES report
    # tells an unplugged receiver from one that can't see the sky.
    running, token = server
    cfg = write_config(tmp_path, running.url, token, gps={"port": bare_gpsd.port})
    found = by_name(run_checks(cfg, {}, gps_wait_s=0.5, clock_synced=lambda: True))
    assert not found["gps device"].ok
    assert "answers but has no receiver open" in found["gps device"].detail
    assert "/etc/default/gpsd" in found["gps device"].fix


def test_a_serial_port_says_whether_nmea_garbage_or_nothing_arrives(
    tmp_path: Path, server: tuple[RunningServer, str], pty_pair: Callable[[], PtyPair]
) -> None:
    running, token = server

    def doctor(data: bytes) -> dict[str, Check]:
        pair = pty_pair()
        gps = {"source": "serial", "device": pair.reader}
        cfg = write_config(tmp_path / pair.reader.replace("/", "_"), running.url, token, gps=gps)
        # Sent over and over while the doctor listens, as a receiver does: what was
        # written before the port opened is flushed by pyserial's open.
        done = threading.Event()

        def send() -> None:
            while data and not done.wait(0.2):
                pair.write(data)

        sender = threading.Thread(target=send, daemon=True)
        sender.start()
        try:
            return by_name(run_checks(cfg, {}, gps_wait_s=1.5, clock_synced=lambda: True))
        finally:
            done.set()
            sender.join(timeout=5)

    # A HAT not seated, or the UART off: the port opens and stays silent.
    silent = doctor(b"")
    assert not silent["gps device"].ok and "nothing came" in silent["gps device"].detail
    assert "enable_uart=1" in silent["gps device"].fix and not silent["gps fix"].ok
    # A receiver at 38400 read at 9600: bytes, but no NMEA line in them.
    garbled = doctor(bytes(range(128, 256)) * 4 + b"\r\n" + b"\xf0\x8c\xfe\r\n" * 20)
    assert not garbled["gps device"].ok and "were not NMEA" in garbled["gps device"].detail
    assert "gps.baud" in garbled["gps device"].fix
    # The real thing: a receiver's sentences, a fix among them.
    start = datetime.now(UTC).replace(microsecond=0)
    route = write_route(tmp_path / "route.nmea", 3, start, 30, gsv=True)
    ready = doctor(route.read_bytes())
    assert ready["gps device"].ok and "NMEA arriving" in ready["gps device"].detail
    assert ready["gps fix"].ok, ready["gps fix"].detail


def test_disk_too_small_and_missing_leds(tmp_path: Path, server: tuple[RunningServer, str]) -> None:
    running, token = server
    cfg = write_config(
        tmp_path,
        running.url,
        token,
        buffer={"max_mb": 1e12},  # a petabyte: no card has that free
        leds={"backend": "sysfs", "sysfs_root": str(tmp_path / "no-leds")},
    )
    found = by_name(run_checks(cfg, {}, gps_wait_s=0.2, clock_synced=lambda: True))
    assert not found["disk"].ok and "lower buffer.max_mb" in found["disk"].fix
    assert not found["leds"].ok and "no LED 'bt-gps'" in found["leds"].detail


def agent(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    """The command line's own entry point, in this process (a subprocess costs seconds)."""
    code = main(list(args))
    return code, capsys.readouterr().out


def test_command_line_checklist_json_and_exit_code(
    tmp_path: Path, server: tuple[RunningServer, str], capsys: pytest.CaptureFixture[str]
) -> None:
    running, token = server
    cfg = write_config(tmp_path, running.url, token, filter={"system_clock": "synced"})
    code, out = agent(capsys, "doctor", "--config", str(cfg), "--json", "--gps-wait", "0.3")
    assert code == 1  # no gpsd here
    doc = json.loads(out)
    assert doc["ok"] is False
    states = {c["name"]: c["ok"] for c in doc["checks"]}
    assert states == {
        "config": True, "gps device": False, "gps fix": False, "time": True, "disk": True,
        "leds": True, "token": True, "server": True, "token valid": True,
    }  # fmt: skip
    assert all(set(c) == {"name", "ok", "detail", "fix"} for c in doc["checks"])
    # The human form of the same checks (what the command prints without --json).
    human = as_text([Check(**c) for c in doc["checks"]])
    assert "[FAIL] gps device" in human and "-> is gpsd running" in human
    assert human.endswith("2 of 9 checks failed")


def test_bad_config_is_the_only_check(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "agent.toml"
    cfg.write_text('[server]\nurl = "http://x"\n[upload]\nmax_batchh = 3\n')
    code, out = agent(capsys, "doctor", "--config", str(cfg))
    assert code == 1
    assert "[FAIL] config" in out and "upload.max_batchh: unknown key" in out
    assert "1 of 1 checks failed" in out
