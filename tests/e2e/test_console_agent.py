"""The console with a real bus unit: a ``bustracker serve`` process, a real
``bustracker-agent`` process replaying NMEA, and chromium signed in as an admin.

An admin creates the device in the console and asks for an enrollment code;
the installer's ``bustracker-agent enroll`` trades it for the token; the bus
moves on the map and in the table, turns offline when the agent stops, and
after a revoke in the console the agent says ``auth_error`` (its status file)
while the console shows the refusal. Screenshots of each state go to
``test-output/screenshots/``.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path

from playwright.sync_api import Page, expect

from tests.browser import screenshot, wait_in_page
from tests.e2e.procs import clean_env, cli, process, wait_for, wait_http
from tests.services import free_port

PASSWORD = "installer-pw-1"


def agent_config(tmp_path: Path) -> Path:
    """The unit's config before enrolling: no server, no token."""
    nmea = tmp_path / "route.nmea"
    start = datetime.now(UTC).replace(microsecond=0).isoformat()
    cli("agent", "simulate", "--seed", "4", "--duration", "600", "--out", str(nmea),
        "--start", start, env=clean_env())  # fmt: skip
    config = tmp_path / "agent.toml"
    config.write_text(
        f'[gps]\nsource = "replay"\npath = "{nmea}"\nspeed = 1.0\nloop = true\n\n'
        f'[buffer]\npath = "{tmp_path / "buffer.sqlite3"}"\n\n'
        f'[status]\npath = "{tmp_path / "status.json"}"\n'
    )
    return config


def agent_state(tmp_path: Path) -> str | None:
    try:
        state: str = json.loads((tmp_path / "status.json").read_text())["state"]
    except (OSError, ValueError, KeyError):
        return None
    return state


def row(page: Page, name: str):  # type: ignore[no-untyped-def]
    return page.locator("#fleet tbody tr", has_text=name)


def test_a_bus_unit_from_creation_to_revocation(tmp_path: Path, page: Page) -> None:
    env = clean_env(BUSTRACKER_DATA_DIR=str(tmp_path / "data"), OFFLINE_AFTER="5s", MAP_TILE_URL="")
    cli("server", "user", "add", "ines", "--role", "admin", "--password-stdin",
        env=env, stdin=PASSWORD + "\n")  # fmt: skip
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server_cmd = [sys.executable, "-m", "server", "serve", "--port", str(port)]
    with process(server_cmd, env, tmp_path, tmp_path / "server.log"):
        wait_http(f"{base}/health")
        page.goto(base + "/console/")
        page.get_by_label("Username").fill("ines")
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        expect(page.locator("#link")).to_have_text("live")
        page.get_by_role("tab", name="Devices").click()
        page.get_by_label("Name", exact=True).fill("bus-77")
        page.get_by_label("Route", exact=True).fill("5")
        page.get_by_role("button", name="Create device").click()
        expect(page.locator("[data-secret]")).to_be_visible()  # the token, shown once
        screenshot(page, "e2e-console-device-created")
        page.get_by_role("button", name="Enrollment code for bus-77").click()
        expect(page.locator("#device-msg")).to_contain_text("bustracker-agent enroll --server")
        code = page.locator("[data-secret]").inner_text()
        screenshot(page, "e2e-console-enrollment-code")
        config = agent_config(tmp_path)
        enrolled = cli("agent", "enroll", "--server", base, "--code", code, "--config",
                       str(config), env=env)  # fmt: skip
        assert "enrolled as device" in enrolled and "bus-77" in enrolled
        agent_cmd = [sys.executable, "-m", "agent", "run", "--config", str(config)]

        with process(agent_cmd, env, tmp_path, tmp_path / "agent.log"):
            page.get_by_role("tab", name="Map").click()
            device_id = wait_in_page(
                page,
                "(() => { for (const v of window.bustracker.fleet.vehicles.values())"
                " if (v.name === 'bus-77' && v.lat != null) return v.device_id; })()",
                timeout=60_000,
            )
            first = page.evaluate(f"window.bustracker.layer.drawnAt({device_id})")
            wait_in_page(
                page,
                f"(p => p && (p[0] !== {first[0]} || p[1] !== {first[1]}))"
                f"(window.bustracker.layer.drawnAt({device_id}))",
                timeout=30_000,
            )
            screenshot(page, "e2e-console-bus-moving")
            page.get_by_role("tab", name="Fleet").click()
            expect(row(page, "bus-77").locator("td").nth(1)).to_have_text("online")
            expect(row(page, "bus-77").locator("td").nth(3)).to_contain_text("km/h")
            screenshot(page, "e2e-console-table-online")
        # The agent stopped: offline once OFFLINE_AFTER (5 s) has passed.
        expect(row(page, "bus-77").locator("td").nth(1)).to_have_text("offline", timeout=30_000)
        screenshot(page, "e2e-console-table-offline")

        with process(agent_cmd, env, tmp_path, tmp_path / "agent2.log"):
            expect(row(page, "bus-77").locator("td").nth(1)).to_have_text("online", timeout=60_000)
            page.get_by_role("tab", name="Devices").click()
            page.once("dialog", lambda d: d.accept())
            page.locator("#view-devices tr", has_text="bus-77").get_by_role(
                "button", name="Revoke"
            ).click()
            expect(
                page.locator("#view-devices tr", has_text="bus-77").locator("td").nth(2)
            ).to_have_text("revoked")
            wait_for(lambda: agent_state(tmp_path) == "auth_error", 60, "the agent's auth_error")
            page.get_by_role("tab", name="Fleet").click()
            expect(row(page, "bus-77").locator("td").nth(1)).to_have_text(
                "auth_error", timeout=30_000
            )
            screenshot(page, "e2e-console-auth-error")
