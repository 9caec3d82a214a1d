"""The two status LEDs: the pattern for every agent state, on a sysfs LED tree the
test builds (what /sys/class/leds holds for a gpio-led overlay), and the software
blinker of the GPIO backend.

A real kernel creates ``delay_on``/``delay_off`` when ``timer`` is written to
``trigger``; the test tree has them from the start. libgpiod can't drive a pin
here (no GPIO chip, and gpio-sim needs configfs and a kernel module this machine
doesn't have), so the GPIO backend is tested where it meets the library (it
refuses a device that isn't a chip, through gpiod's own check) and through the
blinker that turns patterns into line levels, which the backends share.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
import typing
from dataclasses import replace
from pathlib import Path

import pytest

from agent.runner import Runner
from agent.settings import parse_settings
from agent.status import LedSink, ListSink, default_sinks
from agent.status.leds import LedError, open_leds
from agent.status.leds.gpio import BlinkingLeds, GpiodLines
from agent.status.leds.patterns import (
    CATCHING_UP,
    FAST,
    GPS_PATTERNS,
    LINK_PATTERNS,
    SLOW,
    SOLID,
    Led,
    lit_at,
    next_change_ms,
)
from agent.status.leds.sysfs import SysfsLeds
from agent.status.snapshot import State, overall_state
from tests.agent.fake_server import FakeServer
from tests.agent.test_runner import WAIT, Running, settings
from tests.agent.test_runner_sinks import TapSource
from tests.agent.test_status_sinks import SNAP

NAMES: dict[Led, str] = {"gps": "bt-gps", "link": "bt-link"}

# What the driver sees, as the sysfs files say it: ("solid",), ("off",) or
# ("blink", delay_on ms, delay_off ms). The table of docs/bus-unit.md.
GPS_SEEN = {
    "fix": ("solid",),
    "searching": ("blink", 500, 500),
    "no_device": ("blink", 100, 100),
}
LINK_SEEN = {
    "ok": ("solid",),
    "backlog": ("blink", 1800, 200),
    "connecting": ("blink", 500, 500),
    "offline": ("blink", 500, 500),
    "auth_error": ("blink", 100, 100),
    "config_error": ("blink", 100, 100),
}


def led_tree(root: Path, *, triggers: str = "[none] timer heartbeat mmc0") -> Path:
    for name in NAMES.values():
        d = root / name
        d.mkdir(parents=True)
        (d / "trigger").write_text(triggers + "\n")
        (d / "brightness").write_text("0\n")
        (d / "max_brightness").write_text("255\n")
        (d / "delay_on").write_text("")
        (d / "delay_off").write_text("")
    return root


def seen(root: Path, led: Led) -> tuple[object, ...]:
    d = root / NAMES[led]
    trigger = (d / "trigger").read_text().strip()
    if trigger == "timer":
        return ("blink", int((d / "delay_on").read_text()), int((d / "delay_off").read_text()))
    assert trigger == "none", trigger
    brightness = (d / "brightness").read_text().strip()
    assert brightness in ("0", "255")  # max_brightness when on
    return ("solid",) if brightness == "255" else ("off",)


@pytest.mark.parametrize("gps", list(GPS_SEEN))
@pytest.mark.parametrize("uplink", list(LINK_SEEN))
def test_every_state_on_a_sysfs_tree(tmp_path: Path, gps: str, uplink: str) -> None:
    root = led_tree(tmp_path)
    sink = LedSink(SysfsLeds(root, NAMES))
    state = overall_state(gps, uplink, starting_up=False)  # type: ignore[arg-type]
    sink.publish(replace(SNAP, gps=gps, uplink=uplink, state=state))  # type: ignore[arg-type]
    assert seen(root, "gps") == GPS_SEEN[gps]
    assert seen(root, "link") == LINK_SEEN[uplink]
    sink.publish(replace(SNAP, stopping=True, state="stopped"))
    assert seen(root, "gps") == seen(root, "link") == ("off",)


def test_the_combinations_above_reach_every_agent_state() -> None:
    reached = {
        overall_state(g, u, starting_up=b)  # type: ignore[arg-type]
        for g in GPS_SEEN
        for u in LINK_SEEN
        for b in (False, True)
    }
    assert reached | {"stopped"} == set(typing.get_args(State))


def test_driver_rules() -> None:
    # Fast blinking only where someone must be called; solid only where all is well.
    fast = {k for k, v in {**GPS_SEEN, **LINK_SEEN}.items() if v == ("blink", 100, 100)}
    assert fast == {"no_device", "auth_error", "config_error"}
    solid = {k for k, v in {**GPS_SEEN, **LINK_SEEN}.items() if v == ("solid",)}
    assert solid == {"fix", "ok"}


def test_a_blink_is_written_once_so_the_kernel_timer_keeps_its_phase(tmp_path: Path) -> None:
    root = led_tree(tmp_path)
    sink = LedSink(SysfsLeds(root, NAMES))
    searching = replace(SNAP, gps="searching", uplink="offline", state="no_fix")
    sink.publish(searching)
    trigger = root / "bt-gps" / "trigger"
    trigger.write_text("timer (as the kernel left it)\n")
    sink.publish(searching)  # the next tick, same state: nothing rewritten
    assert trigger.read_text() == "timer (as the kernel left it)\n"
    sink.publish(replace(searching, gps="fix", state="buffering"))
    assert seen(root, "gps") == ("solid",) and seen(root, "link") == ("blink", 500, 500)


def test_a_failed_write_is_tried_again_at_the_next_tick(tmp_path: Path) -> None:
    # On a Pi the first delay_on write can beat the udev rule that lets the agent's
    # group write it (the kernel creates the file when "timer" is written).
    root = led_tree(tmp_path)
    delay_on = root / "bt-gps" / "delay_on"
    delay_on.unlink()
    delay_on.mkdir()  # unwritable for root too
    sink = LedSink(SysfsLeds(root, NAMES))
    searching = replace(SNAP, gps="searching", uplink="ok", state="no_fix")
    with pytest.raises(LedError, match="delay_on"):
        sink.publish(searching)
    delay_on.rmdir()
    delay_on.write_text("")
    sink.publish(searching)  # same snapshot: not taken as shown, so written now
    assert seen(root, "gps") == ("blink", 500, 500)


def test_missing_led_or_timer_trigger_is_named(tmp_path: Path) -> None:
    with pytest.raises(LedError, match=r"no LED 'bt-gps' in .*gpio-led overlay"):
        SysfsLeds(tmp_path, NAMES)
    led_tree(tmp_path / "notimer", triggers="[none] heartbeat")
    with pytest.raises(LedError, match="no 'timer' trigger"):
        SysfsLeds(tmp_path / "notimer", NAMES)


def test_default_sinks_drive_configured_leds_and_survive_missing_ones(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = led_tree(tmp_path / "leds")
    base = {"server": {"url": "http://127.0.0.1:9"}, "buffer": {"path": str(tmp_path / "b.db")}}
    cfg = parse_settings({**base, "leds": {"backend": "sysfs", "sysfs_root": str(root)}})
    assert any(isinstance(s, LedSink) for s in default_sinks(cfg, environ={}))
    cfg = parse_settings({**base, "leds": {"backend": "sysfs", "gps": "nonesuch"}})
    with caplog.at_level(logging.ERROR):
        sinks = default_sinks(cfg, environ={})
    assert not any(isinstance(s, LedSink) for s in sinks) and len(sinks) == 1  # the file
    assert "status LEDs off: no LED 'nonesuch'" in caplog.text
    assert open_leds(parse_settings(base).leds) is None  # backend "none", the default


def test_the_running_agent_lights_both_and_darkens_them_on_stop(tmp_path: Path) -> None:
    root = led_tree(tmp_path / "leds")
    with FakeServer(limit=1000, window_s=1.0) as server:
        cfg = settings(tmp_path, server.url)
        memory = ListSink()
        runner = Runner(
            cfg, source=TapSource(flowing=True), sinks=[LedSink(SysfsLeds(root, NAMES)), memory]
        )
        with Running(runner):
            assert memory.wait_for(lambda s: s.state == "ok", WAIT)
            assert seen(root, "gps") == seen(root, "link") == ("solid",)
    assert seen(root, "gps") == seen(root, "link") == ("off",)


# -- the GPIO backend ----------------------------------------------------------------


def test_gpiod_refuses_what_is_not_a_gpio_chip(tmp_path: Path) -> None:
    with pytest.raises(LedError, match="/dev/null is not a GPIO chip"):
        GpiodLines(Path("/dev/null"), NAMES)
    with pytest.raises(LedError, match="not a GPIO chip"):
        GpiodLines(tmp_path / "gpiochip9", NAMES)


def test_pattern_timing() -> None:
    assert [lit_at(SLOW, ms) for ms in (0, 499, 500, 999, 1000)] == [1, 1, 0, 0, 1]
    assert [next_change_ms(SLOW, ms) for ms in (0, 499, 500, 999)] == [500, 500, 1000, 1000]
    assert lit_at(SOLID, 1e9) and next_change_ms(SOLID, 5) is None
    assert next_change_ms(FAST, 150) == 200


class Recorder:
    def __init__(self) -> None:
        self.levels: dict[str, list[bool]] = {"gps": [], "link": []}
        self.changed = threading.Condition()
        self.closed = False

    def set(self, led: Led, lit: bool) -> None:
        with self.changed:
            self.levels[led].append(lit)
            self.changed.notify_all()

    def close(self) -> None:
        self.closed = True


def test_software_blinker_switches_at_every_edge_and_goes_dark_on_close() -> None:
    lines = Recorder()
    leds = BlinkingLeds(lines)
    leds.show("gps", FAST)
    leds.show("link", SOLID)
    with lines.changed:
        assert lines.changed.wait_for(lambda: len(lines.levels["gps"]) >= 6, WAIT)
    leds.show("gps", SOLID)
    with lines.changed:  # SOLID lights the LED (at once, or it was lit already)
        assert lines.changed.wait_for(lambda: lines.levels["gps"][-1] is True, WAIT)
        settled = len(lines.levels["gps"])
    time.sleep(0.25)  # longer than a FAST period: a blink still running would show
    assert len(lines.levels["gps"]) == settled
    leds.close()
    gps = lines.levels["gps"]
    assert gps[0] is True and all(a != b for a, b in itertools.pairwise(gps))
    assert gps[settled:] == [False]  # dark at close
    assert lines.levels["link"] == [True, False] and lines.closed


def test_the_bus_unit_doc_shows_what_the_code_does() -> None:
    # The driver's table (docs/bus-unit.md) must say what the LEDs really do.
    words = {
        SOLID: "| solid |",
        SLOW: "| slow blink",
        FAST: "| fast blink",
        CATCHING_UP: "short dark",
    }
    doc = (Path(__file__).resolve().parents[2] / "docs/bus-unit.md").read_text()
    rows = [line for line in doc.splitlines() if line.startswith(("| GPS |", "| NET |"))]
    for led, table in (("GPS", GPS_PATTERNS), ("NET", LINK_PATTERNS)):
        for state, pattern in table.items():
            row = [r for r in rows if r.startswith(f"| {led} |") and f"`{state}`" in r]
            assert len(row) == 1 and words[pattern] in row[0], (led, state, row)
