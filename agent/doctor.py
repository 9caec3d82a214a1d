"""``bustracker-agent doctor``: is this bus unit ready? A checklist for the installer.

Each check says what it found and, when it failed, what to do about it. They
run in order, and one that can't run because an earlier one failed says so
instead of guessing: without a config there is nothing to check, and without a
token the server can't be asked about it. The exit code is 1 if any check
failed, so a script (or the installer) can stop on it.

Nothing here changes the unit: the GPS is only read, the LEDs are only looked
at, and the token is tried with an empty batch, which stores nothing.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx

from agent import __version__
from agent.protocol import encode_batch
from agent.settings import ConfigError, Settings, load_settings
from agent.status.leds import LedError

# A buffer needs its cap free, plus room for SQLite's WAL and a journal.
DISK_MARGIN = 1.2
SATS_WAIT_S = 3.0


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""  # what to do, when not ok


def check_config(path: Path, env: Mapping[str, str]) -> tuple[Check, Settings | None]:
    try:
        settings = load_settings(path, env)
    except ConfigError as exc:
        return Check(
            "config",
            False,
            "; ".join(exc.problems),
            f"edit {path} (every key is in docs/agent.md), then run doctor again",
        ), None
    return Check("config", True, f"{path} is valid"), settings


def check_token(settings: Settings, config: Path) -> tuple[Check, str | None]:
    from agent.uplink import read_token

    token, problem = read_token(settings.server)
    if token is None:
        return Check(
            "token",
            False,
            problem or "no token",
            "enroll the unit: bustracker-agent enroll --server URL --code CODE "
            f"--config {config} (as the agent's user)",
        ), None
    where = settings.server.token_file or "server.token"
    return Check("token", True, f"device token read from {where}"), token


NO_RECEIVER = Check("gps fix", False, "no receiver to ask", "fix the device first")


def _silent_port(where: str, wait_s: float, unreadable: int) -> Check:
    """A serial port that opens but gives no NMEA: nothing on it, or the wrong baud."""
    if unreadable:
        return Check(
            "gps device",
            False,
            f"{where} opens, but its {unreadable} lines in {wait_s:.0f} s were not NMEA",
            "a wrong gps.baud reads as garbage: most receivers send 9600, u-blox M8/M9 "
            "often 38400, some 115200; `stty -F <device> <baud>; cat <device>` should "
            "show lines starting with $G",
        )
    return Check(
        "gps device",
        False,
        f"{where} opens, but nothing came in {wait_s:.0f} s",
        "is the receiver wired and powered? On a Pi HAT: enable_uart=1 and no serial "
        "console on it (raspi-config, Interface Options, Serial Port)",
    )


def check_gps(settings: Settings, wait_s: float) -> list[Check]:
    """Read the configured source for up to ``wait_s``: does it answer, and with a fix?"""
    from agent.runner import make_source
    from agent.sources import GpsdSource, SerialSource

    gps = settings.gps
    where = (
        f"gpsd at {gps.host}:{gps.port}"
        if gps.source == "gpsd"
        else (f"{gps.device} at {gps.baud} baud" if gps.source == "serial" else f"{gps.path}")
    )
    source = make_source(gps)
    stop = threading.Event()
    seen_device = False
    fix = None
    paths: list[str] = []
    deadline = time.monotonic() + wait_s
    try:
        for item in source.fixes(stop):
            # The way to the receiver counts once it is there (the port opens, gpsd
            # answers); whether a receiver talks on it is judged below.
            way = (isinstance(source, SerialSource) and source.port_open) or (
                isinstance(source, GpsdSource) and source.answering
            )
            seen_device = seen_device or source.connected or way
            if isinstance(source, GpsdSource):
                paths = source.receivers  # taken now: a closed session forgets them
            if item is not None and (item.mode is None or item.mode >= 2):
                if fix is None:
                    # gpsd lends the satellite count from its SKY report, which may
                    # come a little later: give it a few more epochs.
                    deadline = min(deadline, time.monotonic() + SATS_WAIT_S)
                fix = item if item.sats is not None or fix is None else fix
                if fix.sats is not None:
                    break
            if time.monotonic() > deadline:
                break
    except Exception as exc:  # a source that can't even start: a missing replay file
        return [Check("gps device", False, f"{where}: {exc}", "check gps.* in the config")]
    finally:
        stop.set()
    if not seen_device:
        fixes = {
            "gpsd": "is gpsd running (systemctl status gpsd) and DEVICES in /etc/default/gpsd "
            "right? `gpsmon` shows what the receiver says",
            "serial": "is the receiver plugged in, and the device/baud right? "
            "(ls -l /dev/serial0 /dev/gps0)",
            "replay": "check gps.path",
        }
        # What the source last met (gpsd refusing the connection, a missing port) is
        # the first thing an installer needs to know.
        why = f": {source.last_error}" if source.last_error else ""
        return [
            Check(
                "gps device",
                False,
                f"no answer from {where} in {wait_s:.0f} s{why}",
                fixes[gps.source],
            ),
            NO_RECEIVER,
        ]
    if isinstance(source, SerialSource) and source.sentences == 0:
        return [_silent_port(where, wait_s, source.unreadable), NO_RECEIVER]
    device = Check("gps device", True, f"{where} answers")
    if isinstance(source, SerialSource):
        device = Check("gps device", True, f"{where}: NMEA arriving")
    if isinstance(source, GpsdSource):
        # gpsd's own DEVICES report, on the source's connection: gpsd answers clients
        # with no receiver, which tells an unplugged one from one without sky.
        if not paths:
            return [
                Check(
                    "gps device",
                    False,
                    f"{where} answers but has no receiver open",
                    "plug the receiver in / seat the HAT; DEVICES in /etc/default/gpsd "
                    "(/dev/serial0 for a HAT, /dev/gps0 for USB); `dmesg | tail` shows what "
                    "the kernel saw",
                ),
                NO_RECEIVER,
            ]
        device = Check("gps device", True, f"{where} answers, reading {', '.join(paths)}")
    if fix is None:
        return [
            device,
            Check(
                "gps fix",
                False,
                f"no fix within {wait_s:.0f} s",
                "the antenna needs open sky: out of the depot, on the roof or dashboard; "
                "a first fix can take a few minutes (doctor --gps-wait 300)",
            ),
        ]
    kind = {2: "2D fix", 3: "3D fix"}.get(fix.mode or 0, "fix")
    sats = f", {fix.sats} satellites" if fix.sats is not None else ", satellites not reported"
    return [device, Check("gps fix", True, f"{kind}{sats} at {fix.lat:.5f}, {fix.lon:.5f}")]


def check_time(settings: Settings, synced: Callable[[], bool]) -> Check:
    mode = settings.filter.system_clock
    if mode != "auto":
        return Check("time", mode == "synced", f"filter.system_clock = {mode!r} (forced)")
    if synced():
        return Check("time", True, "the system clock is synchronized")
    return Check(
        "time",
        False,
        "the system clock is not synchronized (no RTC on a Pi)",
        "chrony sets it from the GPS once there is a fix: `chronyc sources` should show GPS/PPS "
        "with a '*'; check /etc/chrony/conf.d/bustracker-gps.conf",
    )


def check_disk(settings: Settings) -> Check:
    path = settings.buffer.path
    directory = path.parent
    while not directory.exists() and directory != directory.parent:
        directory = directory.parent
    need = settings.buffer.max_mb * 1e6 * DISK_MARGIN
    have = path.stat().st_size if path.exists() else 0
    free = shutil.disk_usage(directory).free
    detail = f"{free / 1e9:.1f} GB free on {directory} for a {settings.buffer.max_mb:g} MB buffer"
    if free + have < need:
        return Check(
            "disk",
            False,
            detail,
            "free space on the card, or lower buffer.max_mb to below "
            f"{free / 1e6 / DISK_MARGIN:.0f}",
        )
    if not os.access(directory, os.W_OK):
        return Check(
            "disk",
            False,
            f"{directory} is not writable by this user",
            "run doctor as the agent's user (sudo -u bustracker ...); the unit's StateDirectory "
            "makes /var/lib/bustracker its own",
        )
    return Check("disk", True, detail)


def check_leds(settings: Settings) -> Check:
    leds = settings.leds
    if leds.backend == "none":
        return Check("leds", True, 'no status LEDs configured (leds.backend = "none")')
    try:
        if leds.backend == "sysfs":
            from agent.status.leds.sysfs import SysfsLeds

            SysfsLeds(leds.sysfs_root, {"gps": leds.gps, "link": leds.link})  # only reads
        else:
            import gpiod

            # Only looked at: the running agent holds the lines, a request would fail.
            if not gpiod.is_gpiochip_device(str(leds.chip)):
                raise LedError(f"{leds.chip} is not a GPIO chip (leds.chip); see `gpiodetect`")
    except LedError as exc:
        return Check("leds", False, str(exc), "see docs/bus-unit.md, Wiring")
    return Check("leds", True, f"{leds.backend}: {leds.gps}, {leds.link}")


def check_server(
    settings: Settings, token: str | None, transport: httpx.BaseTransport | None
) -> list[Check]:
    url = settings.server.url.rstrip("/")
    timeout = httpx.Timeout(
        settings.upload.read_timeout_s, connect=settings.upload.connect_timeout_s
    )
    with httpx.Client(timeout=timeout, transport=transport) as client:
        try:
            health = client.get(f"{url}/health")
        except httpx.HTTPError as exc:
            reason = f"{type(exc).__name__}: {exc}"
            return [
                Check(
                    "server",
                    False,
                    f"{url} unreachable: {reason}",
                    "check the modem (signal, APN, data plan), DNS, and server.url; "
                    "the agent buffers meanwhile",
                ),
                Check(
                    "token valid", False, "the server can't be asked", "fix the connection first"
                ),
            ]
        reach = Check("server", True, f"{url} answers (GET /health: HTTP {health.status_code})")
        if token is None:
            return [reach, Check("token valid", False, "no token to try", "enroll first")]
        # An empty batch: the same request the agent sends, storing nothing.
        try:
            answer = client.post(
                f"{url}/v1/telemetry/location",
                content=encode_batch([], __version__, 0),
                headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
            )
        except httpx.HTTPError as exc:
            return [reach, Check("token valid", False, f"{type(exc).__name__}: {exc}", "try again")]
    code = answer.status_code
    if code in (401, 403):
        return [
            reach,
            Check(
                "token valid",
                False,
                f"the server refused the token (HTTP {code})",
                "the device was revoked or the token is not this server's: ask the operators "
                "for a new enrollment code and run bustracker-agent enroll",
            ),
        ]
    if code == 200 or code == 429:  # 429: counted against this device, so it is known
        return [reach, Check("token valid", True, f"the server accepts the token (HTTP {code})")]
    return [
        reach,
        Check(
            "token valid",
            False,
            f"HTTP {code} for an empty batch: {answer.text[:200]}",
            "is server.url the bustracker server itself (not a proxy page)?",
        ),
    ]


def run_checks(
    config: Path,
    env: Mapping[str, str],
    *,
    gps_wait_s: float = 15.0,
    clock_synced: Callable[[], bool] | None = None,
    transport: httpx.BaseTransport | None = None,
) -> list[Check]:
    first, settings = check_config(config, env)
    if settings is None:
        return [first]
    if clock_synced is None:
        from agent.runner import kernel_clock_synced

        clock_synced = kernel_clock_synced
    token_check, token = check_token(settings, config)
    return [
        first,
        *check_gps(settings, gps_wait_s),
        check_time(settings, clock_synced),
        check_disk(settings),
        check_leds(settings),
        token_check,
        *check_server(settings, token, transport),
    ]


def as_json(checks: list[Check]) -> dict[str, object]:
    return {"ok": all(c.ok for c in checks), "checks": [asdict(c) for c in checks]}


def as_text(checks: list[Check]) -> str:
    width = max(len(c.name) for c in checks)
    lines = []
    for c in checks:
        lines.append(f"[{'ok' if c.ok else 'FAIL':>4}] {c.name:<{width}}  {c.detail}")
        if not c.ok and c.fix:
            lines.append(f"       {'':<{width}}  -> {c.fix}")
    failed = sum(not c.ok for c in checks)
    lines.append("all checks passed" if not failed else f"{failed} of {len(checks)} checks failed")
    return "\n".join(lines)
