"""The README's run command: `bustracker demo` shows buses moving in /v1/fleet/live."""

from __future__ import annotations

import json
import os
import re
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import httpx
import pytest

from tests.e2e.procs import clean_env, live, login, wait_for
from tests.services import free_port

BUSES = 2


@contextmanager
def demo(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], str, str]]:
    """A running demo of BUSES buses in its own session, its base URL and what it printed."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "server", "demo", "--buses", str(BUSES), "--port", str(port)],
        cwd=tmp_path,
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        assert proc.stdout is not None
        output = ""
        deadline = time.monotonic() + 60
        while "Ctrl-C" not in output and time.monotonic() < deadline:
            ready, _, _ = select.select([proc.stdout], [], [], 1)
            if ready:
                output += proc.stdout.readline()
            assert proc.poll() is None, output
        assert base in output
        yield proc, base, output
    finally:
        # Its whole group: a bus the demo failed to stop outlives it there.
        with suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def session_processes(sid: int) -> list[str]:
    """The demo and every process it started (they share its session), as pid and command."""
    r = subprocess.run(["pgrep", "-a", "-s", str(sid)], capture_output=True, text=True)
    return r.stdout.splitlines()


def test_demo_buses_move_and_ctrl_c_stops_everything(tmp_path: Path) -> None:
    with demo(tmp_path) as (proc, base, output):
        match = re.search(r"sign in:\s+(\S+) / (\S+)", output)
        assert match, output
        headers = login(base, match.group(1), match.group(2))
        first = wait_for(
            lambda: (v := live(base, headers)) and len(v) == BUSES and v,
            60,
            "both demo buses in /v1/fleet/live",
        )
        before = {v["name"]: (v["lat"], v["lon"], v["t"]) for v in first}

        def moved() -> bool:
            now = {v["name"]: (v["lat"], v["lon"], v["t"]) for v in live(base, headers)}
            return all(now[name][2] > before[name][2] for name in before) and now != before

        wait_for(moved, 60, "the demo buses to report newer positions", interval=1.0)
        # The rider feed the demo prints shows both buses, without operator details.
        assert f"curl -N {base}/v1/live/public/stream" in output
        with httpx.stream("GET", f"{base}/v1/live/public/stream", timeout=30) as feed:
            data = next(line for line in feed.iter_lines() if line.startswith("data:"))
        frame = json.loads(data[5:])
        assert frame["type"] == "snapshot"
        assert sorted(v["label"] for v in frame["vehicles"]) == ["bus-01", "bus-02"]
        assert all("device_id" not in v for v in frame["vehicles"])
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
    # No simulated bus outlives the demo.
    leftover = subprocess.run(["pgrep", "-f", str(tmp_path)], capture_output=True, text=True)
    assert leftover.stdout.strip() == ""


# SIGTERM to the demo alone is `kill PID`; to its group, a systemd stop (KillMode=
# control-group signals every process of the unit); SIGINT alone, a supervisor's interrupt.
@pytest.mark.parametrize(
    ("sig", "group"),
    [(signal.SIGTERM, False), (signal.SIGTERM, True), (signal.SIGINT, False)],
    ids=["sigterm-demo", "sigterm-group", "sigint-demo"],
)
def test_a_stop_signal_ends_the_demo_and_every_bus_promptly(
    tmp_path: Path, sig: signal.Signals, group: bool
) -> None:
    with demo(tmp_path) as (proc, _, _):
        statuses = [
            tmp_path / "data" / "demo" / f"bus-{i:02d}.status.json" for i in range(1, BUSES + 1)
        ]
        # A bus writes its status once it runs, signal handlers and all.
        wait_for(lambda: all(p.exists() for p in statuses), 30, "every bus to run", 0.2)
        assert len(session_processes(proc.pid)) == 1 + BUSES
        start = time.monotonic()
        if group:
            os.killpg(proc.pid, sig)
        else:
            proc.send_signal(sig)
        # Generous bound: what matters is that everything goes, and roughly how fast.
        gone = wait_for(
            lambda: proc.poll() is not None and not session_processes(proc.pid),
            10,
            "the demo and its buses to exit",
            interval=0.05,
        )
        print(
            f"{sig.name} to the demo{' group' if group else ''}: all gone after "
            f"{time.monotonic() - start:.2f} s"
        )
        assert gone
        assert proc.returncode == 0
