"""The units in systemd/: systemd's own parser accepts them, and they say what we rely on.

``systemd-analyze verify`` wants every ExecStart binary to exist and be
executable, and /opt/bustracker/.venv doesn't exist here, so each unit is
verified as a copy whose /opt/bustracker/.venv/bin points at stub executables in
a temp dir (nothing else changes). ``--man=no``: Documentation= points at the
installed docs, not man pages. ``verify`` exits 0 for an unknown key or a bad
value ("Unknown key 'WatchdogSecs'... ignoring"), which would silently drop a
hardening option, so any output at all counts as a failure here.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.service_procs import in_ci

ROOT = Path(__file__).resolve().parents[2]
UNITS = sorted((ROOT / "systemd").glob("*.service"))
VENV_BIN = "/opt/bustracker/.venv/bin"


def analyze() -> str:
    exe = shutil.which("systemd-analyze")
    if exe is None:
        message = "systemd-analyze not found: install the Debian package systemd"
        if in_ci():
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return exe


def directives(unit: Path) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in unit.read_text().splitlines():
        if "=" in line and not line.startswith(("#", ";", "[")):
            key, value = line.split("=", 1)
            out.setdefault(key.strip(), []).append(value.strip())
    return out


def stub_copy(unit_text: str, name: str, tmp: Path) -> Path:
    bin_dir = tmp / "bin"
    bin_dir.mkdir(exist_ok=True)
    for exe in ("bustracker", "bustracker-agent"):
        (bin_dir / exe).write_text("#!/bin/sh\n")
        (bin_dir / exe).chmod(0o755)
    copy = tmp / name
    copy.write_text(unit_text.replace(VENV_BIN, str(bin_dir)))
    return copy


def verify(unit_text: str, name: str, tmp: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [analyze(), "verify", "--man=no", str(stub_copy(unit_text, name, tmp))],
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_the_units_exist() -> None:
    assert [u.name for u in UNITS] == [
        "bustracker-agent.service",
        "bustracker-server.service",
        "bustracker-worker.service",
    ]


@pytest.mark.parametrize("unit", UNITS, ids=lambda u: u.name)
def test_systemd_analyze_verify(unit: Path, tmp_path: Path) -> None:
    r = verify(unit.read_text(), unit.name, tmp_path)
    assert r.returncode == 0 and not (r.stdout + r.stderr).strip(), r.stdout + r.stderr


@pytest.mark.parametrize("unit", UNITS, ids=lambda u: u.name)
def test_hardened_by_systemds_own_measure(unit: Path, tmp_path: Path) -> None:
    # `systemd-analyze security` scores a unit's exposure from 0 (locked down) to 10;
    # --threshold is in tenths and makes it exit 1 above it. 4.0 and below is "OK".
    copy = stub_copy(unit.read_text(), unit.name, tmp_path)
    r = subprocess.run(
        [analyze(), "security", "--offline=yes", "--threshold=40", str(copy)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr


def test_verify_would_catch_a_typo(tmp_path: Path) -> None:
    # What the "no output" rule above is for: the exit code alone says nothing.
    text = (ROOT / "systemd/bustracker-agent.service").read_text()
    r = verify(text.replace("WatchdogSec=", "WatchdogSecs="), "bustracker-agent.service", tmp_path)
    assert r.returncode == 0 and "Unknown key 'WatchdogSecs'" in r.stderr


def test_agent_unit_is_a_watched_hardened_notify_service() -> None:
    d = directives(ROOT / "systemd/bustracker-agent.service")
    assert d["Type"] == ["notify"] and d["NotifyAccess"] == ["main"]
    assert int(d["WatchdogSec"][0]) >= 10  # several status ticks, as the sink sends at half
    assert d["Restart"] == ["always"] and d["RestartPreventExitStatus"] == ["2"]
    assert d["User"] == ["bustracker"] and d["StateDirectory"] == ["bustracker"]
    assert d["ProtectSystem"] == ["strict"] and d["NoNewPrivileges"] == ["yes"]
    assert d["DevicePolicy"] == ["closed"]
    allowed = {v.split()[0] for v in d["DeviceAllow"]}
    assert allowed == {"char-ttyAMA", "char-ttyS", "char-ttyUSB", "char-ttyACM", "char-gpiochip"}
    assert d["ProtectKernelTunables"] == ["yes"]
    # ProtectClock's filter blocks adjtimex(), which agent.runner.kernel_clock_synced reads.
    assert "ProtectClock" not in d
    assert d["ReadWritePaths"] == ["-/sys/devices/platform"]  # the LEDs; the rest is state


def test_server_and_worker_units() -> None:
    server = directives(ROOT / "systemd/bustracker-server.service")
    worker = directives(ROOT / "systemd/bustracker-worker.service")
    assert server["LimitNOFILE"] == ["65536"]
    assert worker["ExecStart"] == [f"{VENV_BIN}/bustracker worker"]
    assert worker["EnvironmentFile"] == server["EnvironmentFile"]
    assert worker["Restart"] == ["always"] and worker["User"] == ["bustracker"]
