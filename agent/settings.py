"""Agent settings: one TOML file plus environment overrides, validated once.

Every problem names the key it is about (``upload.max_batch: must be an
integer >= 1, got "x"``) and all problems are reported together, so a field
technician fixes a config in one round trip. Unknown keys are errors: a typo
such as ``max_mbs`` would otherwise silently keep the default.

Environment overrides: ``BUSTRACKER_AGENT__<SECTION>__<KEY>=value`` (case
insensitive), e.g. ``BUSTRACKER_AGENT__UPLOAD__MAX_BATCH=250``. Values are
parsed to the key's type (``true``/``false``/``1``/``0`` for booleans).

The settings hold plain values only. The token is *not* read here when it
comes from ``token_file``: the uplink re-reads that file so a rotated token is
picked up without a restart, and a missing token becomes the ``config_error``
state of a running agent (which keeps capturing) rather than a crash loop.
"""

from __future__ import annotations

import json
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal, Union

ENV_PREFIX = "BUSTRACKER_AGENT__"
# systemd's StateDirectory=bustracker: survives upgrades, config changes and reboots.
DEFAULT_BUFFER_PATH = Path("/var/lib/bustracker/buffer.sqlite3")
# Year this agent release was built: no honest live GPS fix can be older, so it
# is the default floor for fix times (``filter.min_year``).
BUILD_YEAR = 2026
# GPS time starts on 6 January 1980: nothing a receiver reports is older.
_GPS_EPOCH_YEAR = 1980


class ConfigError(Exception):
    """The configuration can't be used; ``problems`` each name their key."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


def _opt(
    default: Any, *, lo: float | None = None, hi: float | None = None, lo_open: bool = False
) -> Any:
    """A field with an allowed numeric range (checked after type coercion)."""
    return field(default=default, metadata={"lo": lo, "hi": hi, "lo_open": lo_open})


@dataclass(frozen=True, slots=True)
class ServerSettings:
    url: str = ""  # base URL; the agent POSTs to <url>/v1/telemetry/location
    token: str | None = None
    token_file: Path | None = None


GpsKind = Literal["gpsd", "serial", "replay"]


@dataclass(frozen=True, slots=True)
class GpsSettings:
    source: GpsKind = "gpsd"
    host: str = "127.0.0.1"
    port: int = _opt(2947, lo=1, hi=65535)
    device: str = "/dev/serial0"
    baud: int = _opt(9600, lo=1)
    path: Path | None = None
    speed: float = _opt(1.0, lo=0)
    loop: bool = False
    connect_timeout_s: float = _opt(5.0, lo=0, lo_open=True)
    read_timeout_s: float = _opt(5.0, lo=0, lo_open=True)
    reconnect_delay_s: float = _opt(2.0, lo=0)
    idle_s: float = _opt(1.0, lo=0, lo_open=True)


@dataclass(frozen=True, slots=True)
class BufferSettings:
    path: Path = DEFAULT_BUFFER_PATH
    max_mb: float = _opt(100.0, lo=0, lo_open=True)
    # "full" fsyncs every commit: a fix survives a power cut by the ignition,
    # not only a crash. "normal" is cheaper on SD cards but may lose the last
    # seconds on power loss (the database itself stays consistent).
    synchronous: Literal["full", "normal"] = "full"


@dataclass(frozen=True, slots=True)
class FilterSettings:
    min_mode: int = _opt(2, lo=1, hi=3)
    max_speed_ms: float = _opt(60.0, lo=0, lo_open=True)
    jump_slack_m: float = _opt(50.0, lo=0)
    jump_reanchor: int = _opt(5, lo=1)
    max_future_s: float = _opt(300.0, lo=0)
    # Lowered only to replay an old field log on a desk; live, the build year
    # catches receivers thrown back ~19.7 years by the GPS week rollover.
    min_year: int = _opt(BUILD_YEAR, lo=_GPS_EPOCH_YEAR)
    system_clock: Literal["auto", "synced", "unsynced"] = "auto"
    stationary_speed_ms: float = _opt(0.5, lo=0)
    stationary_interval_s: float = _opt(30.0, lo=0)
    moving_interval_s: float = _opt(0.0, lo=0)
    heading_change_deg: float = _opt(15.0, lo=0, hi=180)


@dataclass(frozen=True, slots=True)
class UploadSettings:
    interval_s: float = _opt(6.0, lo=0, lo_open=True)
    # Assumed until the server advertises its own limit (RateLimit-Policy).
    requests_per_minute: float = _opt(10.0, lo=0, lo_open=True)
    max_batch: int = _opt(500, lo=1)
    safety_margin: float = _opt(0.1, lo=0, hi=1)
    connect_timeout_s: float = _opt(10.0, lo=0, lo_open=True)
    read_timeout_s: float = _opt(30.0, lo=0, lo_open=True)
    gzip: bool = True
    backoff_base_s: float = _opt(2.0, lo=0, lo_open=True)
    backoff_max_s: float = _opt(60.0, lo=0, lo_open=True)
    auth_retry_s: float = _opt(300.0, lo=0, lo_open=True)


@dataclass(frozen=True, slots=True)
class StatusSettings:
    path: Path | None = None  # default: status.json next to the buffer
    interval_s: float = _opt(1.0, lo=0, lo_open=True)
    no_fix_after_s: float = _opt(10.0, lo=0, lo_open=True)


LedBackend = Literal["none", "sysfs", "gpiod"]


@dataclass(frozen=True, slots=True)
class LedSettings:
    """The two status LEDs (agent/status/leds/): which backend, and which LED is which."""

    backend: LedBackend = "none"
    # sysfs: LED names under sysfs_root (e.g. a gpio-leds overlay's "bt-gps");
    # gpiod: GPIO line names or offsets on ``chip``.
    gps: str = "bt-gps"
    link: str = "bt-link"
    sysfs_root: Path = Path("/sys/class/leds")
    chip: Path = Path("/dev/gpiochip0")
    active_low: bool = False


@dataclass(frozen=True, slots=True)
class Settings:
    server: ServerSettings = field(default_factory=ServerSettings)
    gps: GpsSettings = field(default_factory=GpsSettings)
    buffer: BufferSettings = field(default_factory=BufferSettings)
    filter: FilterSettings = field(default_factory=FilterSettings)
    upload: UploadSettings = field(default_factory=UploadSettings)
    status: StatusSettings = field(default_factory=StatusSettings)
    leds: LedSettings = field(default_factory=LedSettings)

    @property
    def status_path(self) -> Path:
        return self.status.path or self.buffer.path.with_name("status.json")


SECTIONS: dict[str, type[Any]] = dict(typing.get_type_hints(Settings))


def _show(value: Any) -> str:
    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)


def _describe(tp: Any) -> str:
    if tp is bool:
        return "a boolean"
    if tp is int:
        return "an integer"
    if tp is float:
        return "a number"
    if tp is Path:
        return "a path (string)"
    if typing.get_origin(tp) is Literal:
        return "one of " + ", ".join(_show(a) for a in typing.get_args(tp))
    return "a string"


def _unwrap_optional(tp: Any) -> tuple[Any, bool]:
    if typing.get_origin(tp) in (Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return args[0], True
    return tp, False


def _coerce(tp: Any, value: Any, from_env: bool) -> Any:
    """Return the typed value or raise ValueError; TOML types are strict."""
    if tp is bool:
        if isinstance(value, bool):
            return value
        if from_env and isinstance(value, str):
            low = value.strip().lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off"):
                return False
        raise ValueError
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if from_env and isinstance(value, str):
            return int(value.strip())
        raise ValueError
    if tp is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if from_env and isinstance(value, str):
            return float(value.strip())
        raise ValueError
    if typing.get_origin(tp) is Literal:
        if value in typing.get_args(tp):
            return value
        raise ValueError
    if isinstance(value, str):
        return Path(value) if tp is Path else value
    raise ValueError


def _bound(f: Any) -> str:
    """The allowed range of a numeric field as text, e.g. " >= 1"."""
    lo, hi, lo_open = f.metadata.get("lo"), f.metadata.get("hi"), f.metadata.get("lo_open")
    parts = []
    if lo is not None:
        parts.append(f"{'>' if lo_open else '>='} {lo:g}")
    if hi is not None:
        parts.append(f"<= {hi:g}")
    return (" " + " and ".join(parts)) if parts else ""


def _in_range(f: Any, value: float) -> bool:
    lo, hi, lo_open = f.metadata.get("lo"), f.metadata.get("hi"), f.metadata.get("lo_open")
    if lo is not None and (value <= lo if lo_open else value < lo):
        return False
    return hi is None or value <= hi


def _section(
    name: str,
    cls: type[Any],
    raw: Mapping[str, Any],
    sources: Mapping[str, str],
    base: Path,
    problems: list[str],
) -> Any:
    hints = typing.get_type_hints(cls)
    known = {f.name: f for f in fields(cls)}
    values: dict[str, Any] = {}
    for key in raw:
        if key not in known:
            problems.append(f"{sources.get(key, '')}{name}.{key}: unknown key")
    for key, f in known.items():
        if key not in raw:
            continue
        tp, optional = _unwrap_optional(hints[key])
        value = raw[key]
        where = f"{sources.get(key, '')}{name}.{key}"
        if optional and value == "" and key in sources:
            values[key] = None  # an empty env var clears an optional key
            continue
        try:
            typed = _coerce(tp, value, from_env=key in sources)
            if tp in (int, float) and not _in_range(f, typed):
                raise ValueError
        except ValueError:
            problems.append(f"{where}: must be {_describe(tp)}{_bound(f)}, got {_show(value)}")
            continue
        if tp is Path and not typed.is_absolute():
            typed = base / typed  # relative to the config file, not the cwd of systemd
        values[key] = typed
    missing = [f.name for f in fields(cls) if f.default is MISSING and f.name not in values]
    problems.extend(f"{name}.{key}: required" for key in missing)
    return cls(**values)


def _env_overrides(env: Mapping[str, str]) -> tuple[dict[str, dict[str, Any]], list[str]]:
    out: dict[str, dict[str, Any]] = {}
    problems: list[str] = []
    for var, value in env.items():
        if not var.upper().startswith(ENV_PREFIX):
            # A near miss (BUSTRACKER_AGENT_BUFFER__PATH) would otherwise be ignored
            # without a word and the default used: say so instead.
            if var.upper().startswith("BUSTRACKER_AGENT_") and "__" in var:
                problems.append(f"{var}: not a setting (use {ENV_PREFIX}<SECTION>__<KEY>)")
            continue
        parts = var[len(ENV_PREFIX) :].lower().split("__")
        if len(parts) != 2 or parts[0] not in SECTIONS:
            problems.append(f"{var}: not a setting (use {ENV_PREFIX}<SECTION>__<KEY>)")
            continue
        out.setdefault(parts[0], {})[parts[1]] = (var, value)
    return out, problems


def _cross_checks(s: Settings, problems: list[str]) -> None:
    url = s.server.url
    if not url:
        problems.append("server.url: required")
    elif not url.startswith(("http://", "https://")):
        problems.append(f"server.url: must start with http:// or https://, got {_show(url)}")
    if s.server.token and s.server.token_file is not None:
        problems.append("server.token: set either token or token_file, not both")
    if s.gps.source == "replay" and s.gps.path is None:
        problems.append('gps.path: required when gps.source = "replay"')


def parse_settings(
    data: Mapping[str, Any], env: Mapping[str, str] | None = None, base: Path | None = None
) -> Settings:
    """Build settings from a parsed TOML mapping plus env overrides."""
    base = base or Path.cwd()
    env_values, problems = _env_overrides(env or {})
    sections: dict[str, Any] = {}
    for name in data:
        if name not in SECTIONS:
            problems.append(f"{name}: unknown section")
        elif not isinstance(data[name], dict):
            problems.append(f"{name}: must be a table ([{name}]), got {_show(data[name])}")
    for name, cls in SECTIONS.items():
        raw = dict(data.get(name) or {}) if isinstance(data.get(name), dict) else {}
        sources: dict[str, str] = {}
        for key, (var, value) in env_values.get(name, {}).items():
            raw[key] = value
            sources[key] = f"{var}: "
        sections[name] = _section(name, cls, raw, sources, base, problems)
    settings = Settings(**sections)
    _cross_checks(settings, problems)
    if problems:
        raise ConfigError(problems)
    return settings


def load_settings(path: Path | str, env: Mapping[str, str] | None = None) -> Settings:
    """Read ``path`` (TOML) and apply env overrides; raise ConfigError naming each bad key."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError([f"{path}: config file not found"]) from None
    except OSError as exc:
        raise ConfigError([f"{path}: can't read config file: {exc.strerror}"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{path}: not valid TOML: {exc}"]) from None
    return parse_settings(data, env, base=path.resolve().parent)


def redacted(settings: Settings) -> dict[str, dict[str, Any]]:
    """The effective settings as plain data, token hidden (for check-config)."""
    out: dict[str, dict[str, Any]] = {}
    server = replace(settings.server, token="***" if settings.server.token else None)
    for name, section in (
        ("server", server),
        ("gps", settings.gps),
        ("buffer", settings.buffer),
        ("filter", settings.filter),
        ("upload", settings.upload),
        ("status", settings.status),
        ("leds", settings.leds),
    ):
        out[name] = {
            f.name: (str(v) if isinstance(v := getattr(section, f.name), Path) else v)
            for f in fields(section)
        }
    out["status"]["path"] = str(settings.status_path)
    return out
