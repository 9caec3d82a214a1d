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
from pathlib import Path

import httpx

from tests.e2e.procs import clean_env, live, login, wait_for
from tests.services import free_port


def test_demo_buses_move_and_ctrl_c_stops_everything(tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "server", "demo", "--buses", "2", "--port", str(port)],
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
        match = re.search(r"sign in:\s+(\S+) / (\S+)", output)
        assert match, output
        assert base in output
        headers = login(base, match.group(1), match.group(2))
        first = wait_for(
            lambda: (v := live(base, headers)) and len(v) == 2 and v,
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
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    # No simulated bus outlives the demo.
    leftover = subprocess.run(["pgrep", "-f", str(tmp_path)], capture_output=True, text=True)
    assert leftover.stdout.strip() == ""
