"""Server settings: read once from the environment (and ``*_FILE`` secrets), validated.

Errors name the variable, so an operator with a typo sees which key is wrong.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

_DURATION = re.compile(r"^\s*(\d+)\s*([smhd]?)\s*$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
_RATE = re.compile(r"^\s*(\d+)\s*(?:/\s*(second|minute|hour|s|m|h|min))?\s*$")
_PER = {None: 60, "minute": 60, "m": 60, "min": 60, "second": 1, "s": 1, "hour": 3600, "h": 3600}


class SettingsError(ValueError):
    """A setting has a bad value; the message starts with the variable's name."""


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


@dataclass(frozen=True, slots=True)
class Settings:
    database_url: str | None = None
    redis_url: str | None = None
    data_dir: Path = Path("data")
    jwt_secret: str = field(default_factory=lambda: secrets.token_urlsafe(48), repr=False)
    jwt_access_expiry_s: int = 15 * 60
    jwt_refresh_expiry_s: int = 7 * 86400
    rate_limit_telemetry: RateLimit = RateLimit(10, 60)
    # OsmAnd senders (phones) are budgeted per fix, not per request (docs/decisions.md).
    rate_limit_osmand: RateLimit = RateLimit(1800, 60)
    rate_limit_api: RateLimit = RateLimit(100, 60)
    cors_origins: tuple[str, ...] = ()
    log_level: str = "info"
    max_batch: int = 500
    max_body_bytes: int = 1024 * 1024
    future_tolerance_s: int = 300
    offline_after_s: int = 120
    # Days of positions kept (PostGIS drops whole daily partitions); 0 keeps all.
    retention_days: int = 90
    # Most PostGIS connections one process holds (requests beyond it queue for one).
    db_pool_size: int = 20
    # How long ingest trusts a device token it looked up (see server/device_tokens.py).
    device_cache_s: int = 30
    # False when JWT_SECRET was not given: tokens then die with the process.
    jwt_secret_configured: bool = False


def _secret(env: Mapping[str, str], name: str) -> str | None:
    """``NAME`` or the contents of the file named by ``NAME_FILE`` (Docker secrets)."""
    path = env.get(f"{name}_FILE")
    if path:
        try:
            return Path(path).read_text().strip()
        except OSError as exc:
            raise SettingsError(f"{name}_FILE: cannot read {path!r}: {exc.strerror}") from exc
    value = env.get(name)
    return value.strip() if value else None


def parse_duration(name: str, raw: str) -> int:
    m = _DURATION.match(raw)
    if not m:
        raise SettingsError(f"{name}: expected a duration like 90s, 15m, 7d; got {raw!r}")
    return int(m.group(1)) * _UNITS[m.group(2)]


def parse_rate(name: str, raw: str) -> RateLimit:
    # The seed plan writes "10 # req/min per device": drop a trailing comment.
    m = _RATE.match(raw.split("#", 1)[0])
    if not m or int(m.group(1)) < 1:
        raise SettingsError(
            f"{name}: expected requests per minute like 10 or 10/minute; got {raw!r}"
        )
    return RateLimit(int(m.group(1)), _PER[m.group(2)])


def _int(env: Mapping[str, str], name: str, default: int, minimum: int = 1) -> int:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name}: expected an integer, got {raw!r}") from None
    if value < minimum:
        raise SettingsError(f"{name}: must be >= {minimum}, got {value}")
    return value


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    env = os.environ if env is None else env
    database_url = _secret(env, "DATABASE_URL")
    if database_url and not re.match(r"^postgres(ql)?://", database_url):
        raise SettingsError(
            f"DATABASE_URL: expected postgresql://… (unset for the embedded SQLite store), got {database_url.split(':')[0]}://…"
        )
    redis_url = _secret(env, "REDIS_URL")
    if redis_url and not re.match(r"^rediss?://", redis_url):
        raise SettingsError("REDIS_URL: expected redis://host:port/db")
    jwt_secret = _secret(env, "JWT_SECRET")
    if jwt_secret is not None and len(jwt_secret) < 32:
        raise SettingsError("JWT_SECRET: must be at least 32 characters")
    level = env.get("LOG_LEVEL", "info").lower()
    if level not in {"debug", "info", "warning", "error", "critical"}:
        raise SettingsError(f"LOG_LEVEL: expected debug, info, warning or error; got {level!r}")
    origins = tuple(o.strip() for o in env.get("CORS_ORIGINS", "").split(",") if o.strip())
    base = Settings()
    return Settings(
        database_url=database_url or None,
        redis_url=redis_url or None,
        data_dir=Path(env.get("BUSTRACKER_DATA_DIR", "data")),
        jwt_secret=jwt_secret or base.jwt_secret,
        jwt_secret_configured=jwt_secret is not None,
        jwt_access_expiry_s=parse_duration(
            "JWT_ACCESS_EXPIRY", env.get("JWT_ACCESS_EXPIRY", "15m")
        ),
        jwt_refresh_expiry_s=parse_duration(
            "JWT_REFRESH_EXPIRY", env.get("JWT_REFRESH_EXPIRY", "7d")
        ),
        rate_limit_telemetry=parse_rate(
            "RATE_LIMIT_TELEMETRY", env.get("RATE_LIMIT_TELEMETRY", "10")
        ),
        rate_limit_osmand=parse_rate("RATE_LIMIT_OSMAND", env.get("RATE_LIMIT_OSMAND", "1800")),
        rate_limit_api=parse_rate("RATE_LIMIT_API", env.get("RATE_LIMIT_API", "100")),
        cors_origins=origins,
        log_level=level,
        max_batch=_int(env, "MAX_BATCH", 500),
        max_body_bytes=_int(env, "MAX_BODY_BYTES", 1024 * 1024, minimum=1024),
        offline_after_s=parse_duration("OFFLINE_AFTER", env.get("OFFLINE_AFTER", "120s")),
        retention_days=_int(env, "RETENTION_DAYS", 90, minimum=0),
        db_pool_size=_int(env, "DB_POOL_SIZE", 20),
        device_cache_s=parse_duration("DEVICE_CACHE_TTL", env.get("DEVICE_CACHE_TTL", "30s")),
    )
