"""Server settings: read once from the environment (and ``*_FILE`` secrets), in sections.

Each setting is a field of its section that names its environment variable and
how to parse it, so :func:`load_settings` is one loop, every variable is listed
in one place (:func:`variables`; ``docs/operations.md`` documents each one, and
a test holds the two together), and every bad variable is reported at once:
an operator fixing an environment file sees all its typos in one start-up.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

_DURATION = re.compile(r"^\s*(\d+)\s*([smhd]?)\s*$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
_RATE = re.compile(r"^\s*(\d+)\s*(?:/\s*(second|minute|hour|s|m|h|min))?\s*$")
_PER = {None: 60, "minute": 60, "m": 60, "min": 60, "second": 1, "s": 1, "hour": 3600, "h": 3600}
_LOG_LEVELS = ("debug", "info", "warning", "error", "critical")


class SettingsError(ValueError):
    """Settings with bad values; each line of the message starts with a variable's name."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


@dataclass(frozen=True, slots=True)
class RateLimit:
    count: int
    per_seconds: int

    @property
    def per_minute(self) -> float:
        rate = self.count * 60 / self.per_seconds
        return int(rate) if rate.is_integer() else rate

    def policy(self) -> str:
        return f"{self.count};w={self.per_seconds}"


# -- parsers: text of one variable -> value; ValueError says what was expected --------


def parse_duration(raw: str) -> int:
    """Seconds, from ``90s``, ``15m``, ``7d`` (a bare number is seconds)."""
    m = _DURATION.match(raw)
    if not m:
        raise ValueError(f"expected a duration like 90s, 15m, 7d; got {raw!r}")
    return int(m.group(1)) * _UNITS[m.group(2)]


def parse_rate(raw: str) -> RateLimit:
    # The seed plan writes "10 # req/min per device": drop a trailing comment.
    m = _RATE.match(raw.split("#", 1)[0])
    if not m or int(m.group(1)) < 1:
        raise ValueError(f"expected a count per minute like 10 or 10/minute; got {raw!r}")
    return RateLimit(int(m.group(1)), _PER[m.group(2)])


def _positive_duration(raw: str) -> int:
    seconds = parse_duration(raw)
    if seconds < 1:
        raise ValueError(f"must be at least 1s, got {raw!r}")
    return seconds


def _integer(minimum: int) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        try:
            value = int(raw)
        except ValueError:
            raise ValueError(f"expected an integer, got {raw!r}") from None
        if value < minimum:
            raise ValueError(f"must be >= {minimum}, got {value}")
        return value

    return parse


def _url(*schemes: str, hint: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        scheme = raw.split(":", 1)[0]
        if scheme not in schemes:
            # Only the scheme is echoed back: the rest may hold a password.
            raise ValueError(f"expected {hint}, got {scheme}://…")
        return raw

    return parse


def _jwt_secret(raw: str) -> str:
    if len(raw) < 32:
        raise ValueError("must be at least 32 characters")
    return raw


def _log_level(raw: str) -> str:
    level = raw.strip().lower()
    if level not in _LOG_LEVELS:
        raise ValueError(f"expected debug, info, warning or error; got {raw!r}")
    return level


def _boolean(raw: str) -> bool:
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ValueError(f"expected true or false, got {raw!r}")


def _percent(raw: str) -> float:
    try:
        value = float(raw.strip().rstrip("%"))
    except ValueError:
        raise ValueError(f"expected a percentage like 10, got {raw!r}") from None
    if not 0 < value < 100:
        raise ValueError(f"must be between 0 and 100, got {raw!r}")
    return value


def _speed_kmh(raw: str) -> float:
    try:
        value = float(raw.strip().removesuffix("km/h").strip())
    except ValueError:
        raise ValueError(f"expected a speed in km/h like 18, got {raw!r}") from None
    if not 1 <= value <= 100:
        raise ValueError(f"must be between 1 and 100 km/h, got {raw!r}")
    return value


def _port(raw: str) -> int:
    value = _integer(0)(raw)
    if value > 65535:
        raise ValueError(f"must be a TCP port (0 = off), got {value}")
    return value


def _tile_url(raw: str) -> str:
    if raw == "":
        return raw  # no tiles: the map is a plain background
    if raw.split(":", 1)[0] not in ("http", "https") or not all(
        part in raw for part in ("{z}", "{x}", "{y}")
    ):
        raise ValueError(f"expected an http(s) URL with {{z}}, {{x}}, {{y}}, or empty; got {raw!r}")
    return raw


def _log_format(raw: str) -> str:
    fmt = raw.strip().lower()
    if fmt not in ("json", "console"):
        raise ValueError(f"expected json or console; got {raw!r}")
    return fmt


def _origins(raw: str) -> tuple[str, ...]:
    return tuple(o.strip() for o in raw.split(",") if o.strip())


def _env(
    name: str,
    parse: Callable[[str], Any],
    default: Any,
    *,
    secret: bool = False,
    empty: bool = False,
) -> Any:
    """A field read from variable ``name`` (and ``name_FILE`` when ``secret``).

    ``empty``: a variable set to the empty string is a value (parsed), not unset.
    """
    meta = {"env": name, "parse": parse, "secret": secret, "empty": empty}
    if callable(default) and not isinstance(default, type):
        return field(default_factory=default, metadata=meta, repr=not secret)
    return field(default=default, metadata=meta, repr=not secret)


# -- sections ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StoreSettings:
    """Where positions live and for how long."""

    database_url: str | None = _env(
        "DATABASE_URL",
        _url("postgresql", "postgres", hint="postgresql://… (unset for the embedded SQLite store)"),
        None,
        secret=True,
    )
    data_dir: Path = _env("BUSTRACKER_DATA_DIR", Path, Path("data"))
    # Days of positions kept (PostGIS drops whole daily partitions); 0 keeps all.
    retention_days: int = _env("RETENTION_DAYS", _integer(0), 90)
    # Most PostGIS connections one process holds (requests beyond it queue for one).
    db_pool_size: int = _env("DB_POOL_SIZE", _integer(1), 20)
    # DATABASE_URL points at PgBouncer in transaction mode: no named prepared statements.
    db_pgbouncer: bool = _env("DB_PGBOUNCER", _boolean, False)
    # A streaming standby for history reads (tracks), used while within the lag.
    database_read_url: str | None = _env(
        "DATABASE_READ_URL",
        _url("postgresql", "postgres", hint="postgresql://… of a read replica"),
        None,
        secret=True,
    )
    db_read_max_lag_s: int = _env("DB_READ_MAX_LAG", parse_duration, 30)


@dataclass(frozen=True, slots=True)
class AuthSettings:
    """Sign-ins of people and the device token cache."""

    jwt_secret: str = _env(
        "JWT_SECRET", _jwt_secret, lambda: secrets.token_urlsafe(48), secret=True
    )
    jwt_access_expiry_s: int = _env("JWT_ACCESS_EXPIRY", parse_duration, 15 * 60)
    jwt_refresh_expiry_s: int = _env("JWT_REFRESH_EXPIRY", parse_duration, 7 * 86400)
    # How long ingest trusts a device token it looked up (see server/device_tokens.py).
    device_cache_s: int = _env("DEVICE_CACHE_TTL", parse_duration, 30)
    # False when JWT_SECRET was not given: tokens then die with the process.
    jwt_secret_configured: bool = False


@dataclass(frozen=True, slots=True)
class LimitSettings:
    """What one sender may send, advertised to agents so they plan within it."""

    rate_limit_telemetry: RateLimit = _env("RATE_LIMIT_TELEMETRY", parse_rate, RateLimit(10, 60))
    # OsmAnd senders (phones) are budgeted per fix, not per request (docs/decisions.md).
    rate_limit_osmand: RateLimit = _env("RATE_LIMIT_OSMAND", parse_rate, RateLimit(1800, 60))
    rate_limit_api: RateLimit = _env("RATE_LIMIT_API", parse_rate, RateLimit(100, 60))
    max_batch: int = _env("MAX_BATCH", _integer(1), 500)
    max_body_bytes: int = _env("MAX_BODY_BYTES", _integer(1024), 1024 * 1024)
    # Fixes dated further ahead than this are refused (protocol v1); not a variable.
    future_tolerance_s: int = 300


@dataclass(frozen=True, slots=True)
class LiveSettings:
    """Live positions between processes and when a silent bus counts as offline."""

    redis_url: str | None = _env(
        "REDIS_URL", _url("redis", "rediss", hint="redis://host:port/db"), None, secret=True
    )
    offline_after_s: int = _env("OFFLINE_AFTER", parse_duration, 120)
    # GTFS-Realtime VehiclePositions (docs/gtfs.md): vehicles older than this are left out,
    # and how long a CDN or consumer may keep one answer.
    gtfs_rt_max_age_s: int = _env("GTFS_RT_MAX_AGE", _positive_duration, 90)
    gtfs_rt_cache_s: int = _env("GTFS_RT_CACHE", parse_duration, 5)
    # The speed a stop's arrival times assume for a bus not known to go faster
    # (server/arrivals.py, docs/rider.md).
    arrival_speed_kmh: float = _env("ARRIVAL_SPEED", _speed_kmh, 18.0)


@dataclass(frozen=True, slots=True)
class HttpSettings:
    """The HTTP front: browsers allowed in, and how much the server logs."""

    cors_origins: tuple[str, ...] = _env("CORS_ORIGINS", _origins, ())
    log_level: str = _env("LOG_LEVEL", _log_level, "info")
    # Map tiles of the rider app (and the console); empty: no tiles, a plain background.
    map_tile_url: str = _env(
        "MAP_TILE_URL", _tile_url, "https://tile.openstreetmap.org/{z}/{x}/{y}.png", empty=True
    )
    map_tile_attribution: str = _env(
        "MAP_TILE_ATTRIBUTION", str, "© OpenStreetMap contributors", empty=True
    )
    # json: one object per line (log shippers); console: text for a person (server/logs.py).
    log_format: str = _env("LOG_FORMAT", _log_format, "json")
    # The OpenAPI schema and its viewers at /schema; false hides them (404).
    api_docs: bool = _env("API_DOCS", _boolean, True)
    # A connection must deliver its request headers, then its body, within these.
    header_timeout_s: int = _env("HEADER_TIMEOUT", parse_duration, 10)
    body_timeout_s: int = _env("BODY_TIMEOUT", parse_duration, 30)
    # Riders' streams (WebSocket and SSE) one process holds, in all and per client address;
    # file descriptors kept free of riders for ingest and operators (server/live/gate.py).
    public_streams_max: int = _env("PUBLIC_STREAMS_MAX", _integer(1), 10_000)
    public_streams_per_address: int = _env("PUBLIC_STREAMS_PER_ADDRESS", _integer(1), 20)
    fd_reserve: int = _env("FD_RESERVE", _integer(16), 512)
    # Messages one rider's WebSocket may send (a burst of the count, refilled over the
    # period); past it its messages are read at that pace (server/live/budget.py).
    # New riders' streams one client address may open (same form), past it 1013 / 503.
    public_connects: RateLimit = _env("PUBLIC_CONNECTS", parse_rate, RateLimit(120, 60))
    public_ws_messages: RateLimit = _env("PUBLIC_WS_MESSAGES", parse_rate, RateLimit(60, 60))


@dataclass(frozen=True, slots=True)
class OpsSettings:
    """The maintenance worker, its alerts and error reporting."""

    worker_interval_s: int = _env("WORKER_INTERVAL", parse_duration, 60)
    # The worker's own /metrics (0 = none); the API's /metrics is on its HTTP port.
    worker_metrics_port: int = _env("WORKER_METRICS_PORT", _port, 9101)
    worker_metrics_host: str = _env("WORKER_METRICS_HOST", str, "127.0.0.1")
    offline_alert_percent: float = _env("OFFLINE_ALERT_PERCENT", _percent, 10.0)
    smtp_host: str | None = _env("SMTP_HOST", str, None)
    smtp_port: int = _env("SMTP_PORT", _port, 587)
    smtp_from: str = _env("SMTP_FROM", str, "bustracker@localhost")
    smtp_user: str | None = _env("SMTP_USER", str, None, secret=True)
    smtp_password: str | None = _env("SMTP_PASSWORD", str, None, secret=True)
    alert_email_to: tuple[str, ...] = _env("ALERT_EMAIL_TO", _origins, ())
    sentry_dsn: str | None = _env(
        "SENTRY_DSN", _url("http", "https", hint="https://key@host/project"), None, secret=True
    )


@dataclass(frozen=True, slots=True)
class Settings:
    store: StoreSettings = field(default_factory=StoreSettings)
    auth: AuthSettings = field(default_factory=AuthSettings)
    limits: LimitSettings = field(default_factory=LimitSettings)
    live: LiveSettings = field(default_factory=LiveSettings)
    http: HttpSettings = field(default_factory=HttpSettings)
    ops: OpsSettings = field(default_factory=OpsSettings)

    def with_values(self, **values: Any) -> Settings:
        """A copy with some values changed, each named by its field (``max_batch=50``).

        Field names are unique across sections, so callers (the demo, tests) need
        not know which section holds a value.
        """
        changed: dict[str, dict[str, Any]] = {}
        owners = {f.name: section for section, f in _section_fields()}
        for name, value in values.items():
            if name not in owners:
                raise TypeError(f"no setting named {name!r}")
            changed.setdefault(owners[name], {})[name] = value
        return replace(
            self,
            **{s: replace(getattr(self, s), **vals) for s, vals in changed.items()},
        )


# Each section of Settings by its field name (checked against Settings just below).
_SECTIONS: dict[str, type[Any]] = {
    "store": StoreSettings,
    "auth": AuthSettings,
    "limits": LimitSettings,
    "live": LiveSettings,
    "http": HttpSettings,
    "ops": OpsSettings,
}
assert list(_SECTIONS) == [f.name for f in fields(Settings)]


def _section_fields() -> Iterator[tuple[str, Any]]:
    for name, section in _SECTIONS.items():
        for f in fields(section):
            yield name, f


def variables() -> list[str]:
    """Every environment variable the server reads (``*_FILE`` twins not listed)."""
    return [f.metadata["env"] for _, f in _section_fields() if "env" in f.metadata]


def _raw(env: Mapping[str, str], name: str, secret: bool, empty: bool = False) -> str | None:
    """``NAME``, or for a secret the contents of the file named by ``NAME_FILE``."""
    path = env.get(f"{name}_FILE") if secret else None
    if path:
        try:
            return Path(path).read_text().strip()
        except OSError as exc:
            raise ValueError(f"cannot read {path!r}: {exc.strerror}") from exc
    value = env.get(name)
    if empty and value is not None and not value.strip():
        return ""
    return value.strip() if value and value.strip() else None


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Settings from ``env`` (default: the process environment); SettingsError lists all."""
    env = os.environ if env is None else env
    values: dict[str, dict[str, Any]] = {}
    problems: list[str] = []
    for section, f in _section_fields():
        meta = f.metadata
        if "env" not in meta:
            continue
        name = meta["env"]
        try:
            raw = _raw(env, name, meta["secret"], meta["empty"])
            if raw is not None:
                values.setdefault(section, {})[f.name] = meta["parse"](raw)
        except ValueError as exc:
            label = f"{name}_FILE" if meta["secret"] and env.get(f"{name}_FILE") else name
            problems.append(f"{label}: {exc}")
    store = values.get("store", {})
    if not store.get("database_url"):
        for name, key in (
            ("DATABASE_READ_URL", "database_read_url"),
            ("DB_PGBOUNCER", "db_pgbouncer"),
        ):
            if store.get(key):
                problems.append(f"{name}: needs DATABASE_URL (PostGIS); SQLite has no {name}")
    ops = values.get("ops", {})
    if ops.get("smtp_host") and not ops.get("alert_email_to"):
        problems.append("ALERT_EMAIL_TO: needed when SMTP_HOST is set (who gets the alerts)")
    if bool(ops.get("smtp_user")) != bool(ops.get("smtp_password")):
        problems.append("SMTP_USER/SMTP_PASSWORD: set both or neither")
    if problems:
        raise SettingsError(problems)
    auth = values.setdefault("auth", {})
    auth["jwt_secret_configured"] = "jwt_secret" in auth
    return Settings(**{name: cls(**values.get(name, {})) for name, cls in _SECTIONS.items()})
