"""Server settings: read in sections, all bad variables named at once, every one documented."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from server.settings import RateLimit, SettingsError, load_settings, variables

ROOT = Path(__file__).resolve().parents[2]


def test_defaults_land_in_their_sections() -> None:
    s = load_settings({})
    assert s.store.database_url is None and s.store.data_dir == Path("data")
    assert (s.store.retention_days, s.store.db_pool_size) == (90, 20)
    assert (s.auth.jwt_access_expiry_s, s.auth.jwt_refresh_expiry_s) == (900, 7 * 86400)
    assert s.auth.jwt_secret_configured is False and len(s.auth.jwt_secret) >= 32
    assert s.limits.rate_limit_telemetry == RateLimit(10, 60)
    assert s.limits.rate_limit_api == RateLimit(100, 60)
    assert (s.limits.max_batch, s.limits.max_body_bytes) == (500, 1024 * 1024)
    assert (s.live.redis_url, s.live.offline_after_s) == (None, 120)
    assert (s.http.cors_origins, s.http.log_level) == ((), "info")


def test_values_are_parsed_from_the_environment() -> None:
    s = load_settings(
        {
            "DATABASE_URL": "postgresql://bus@db/bustracker",
            "REDIS_URL": "redis://cache:6379/0",
            "JWT_SECRET": "s" * 40,
            "JWT_ACCESS_EXPIRY": "5m",
            "RATE_LIMIT_TELEMETRY": "10 # req/min per device",
            "RATE_LIMIT_API": "5/second",
            "CORS_ORIGINS": "https://a.example, https://b.example",
            "LOG_LEVEL": "DEBUG",
            "OFFLINE_AFTER": "2m",
            "DB_POOL_SIZE": "32",
            "RETENTION_DAYS": "0",
            "BUSTRACKER_DATA_DIR": "/var/lib/bustracker",
        }
    )
    assert s.store.database_url == "postgresql://bus@db/bustracker"
    assert s.live.redis_url == "redis://cache:6379/0"
    assert s.auth.jwt_secret == "s" * 40 and s.auth.jwt_secret_configured is True
    assert s.auth.jwt_access_expiry_s == 300
    assert s.limits.rate_limit_telemetry == RateLimit(10, 60)
    assert s.limits.rate_limit_api.policy() == "5;w=1"
    assert s.http.cors_origins == ("https://a.example", "https://b.example")
    assert s.http.log_level == "debug"
    assert (s.live.offline_after_s, s.store.db_pool_size, s.store.retention_days) == (120, 32, 0)
    assert s.store.data_dir == Path("/var/lib/bustracker")


def test_phones_have_their_own_per_fix_budget() -> None:
    assert load_settings({}).limits.rate_limit_osmand.policy() == "1800;w=60"
    got = load_settings({"RATE_LIMIT_OSMAND": "40/second"}).limits.rate_limit_osmand
    assert got.policy() == "40;w=1"


def test_arrival_times_assume_a_city_buses_average_speed_in_km_h() -> None:
    assert load_settings({}).live.arrival_speed_kmh == 18.0
    assert load_settings({"ARRIVAL_SPEED": "22.5"}).live.arrival_speed_kmh == 22.5
    assert load_settings({"ARRIVAL_SPEED": "25 km/h"}).live.arrival_speed_kmh == 25.0


def test_a_secret_can_come_from_a_file(tmp_path: Path) -> None:
    secret = tmp_path / "jwt"
    secret.write_text("f" * 48 + "\n")
    assert load_settings({"JWT_SECRET_FILE": str(secret)}).auth.jwt_secret == "f" * 48
    with pytest.raises(SettingsError, match=r"^JWT_SECRET_FILE: cannot read"):
        load_settings({"JWT_SECRET_FILE": str(tmp_path / "missing")})


@pytest.mark.parametrize(
    ("name", "raw"),
    [
        ("DB_POOL_SIZE", "many"),
        ("DB_POOL_SIZE", "0"),
        ("DB_POOL_SIZE", "2.5"),
        ("RETENTION_DAYS", "-1"),
        ("MAX_BODY_BYTES", "10"),
        ("RATE_LIMIT_OSMAND", "lots"),
        ("RATE_LIMIT_TELEMETRY", "0"),
        ("JWT_SECRET", "short"),
        ("JWT_ACCESS_EXPIRY", "soon"),
        ("OFFLINE_AFTER", "2 weeks"),
        ("LOG_LEVEL", "loud"),
        ("DATABASE_URL", "mysql://root:hunter2@db/x"),
        ("REDIS_URL", "memcached://cache"),
        ("ARRIVAL_SPEED", "fast"),
        ("ARRIVAL_SPEED", "0"),
        ("ARRIVAL_SPEED", "250"),
        ("ARRIVAL_SPEED", "nan"),
    ],
)
def test_a_bad_value_names_its_variable(name: str, raw: str) -> None:
    with pytest.raises(SettingsError, match=rf"^{name}: ") as caught:
        load_settings({name: raw})
    assert "hunter2" not in str(caught.value)  # a URL's password is never echoed


def test_every_bad_variable_is_reported_at_once() -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings({"DB_POOL_SIZE": "many", "LOG_LEVEL": "loud", "OFFLINE_AFTER": "x"})
    named = [problem.split(":")[0] for problem in caught.value.problems]
    assert sorted(named) == ["DB_POOL_SIZE", "LOG_LEVEL", "OFFLINE_AFTER"]


def test_the_cli_prints_each_bad_variable_on_its_own_line() -> None:
    env = {"PATH": "/usr/bin:/bin", "DB_POOL_SIZE": "many", "MAX_BATCH": "0"}
    r = subprocess.run(
        [sys.executable, "-m", "server", "migrate"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert any(line.startswith("bustracker: DB_POOL_SIZE: ") for line in lines), r.stderr
    assert any(line.startswith("bustracker: MAX_BATCH: ") for line in lines), r.stderr


def _documented() -> set[str]:
    """The variables named in the first column of docs/operations.md's settings table."""
    text = (ROOT / "docs" / "operations.md").read_text()
    table = text.split("## Settings", 1)[1].split("\n## ", 1)[0]
    names: set[str] = set()
    for line in table.splitlines():
        cells = line.split("|")
        if len(cells) > 2:
            names.update(re.findall(r"`([A-Z][A-Z0-9_]+)`", cells[1]))
    return names


def test_every_variable_is_documented_in_operations_md() -> None:
    documented = _documented()
    assert "DATABASE_URL" in documented  # the table was found and read
    assert sorted(set(variables()) - documented) == []


def test_operations_md_documents_no_variable_the_server_does_not_read() -> None:
    assert sorted(_documented() - set(variables())) == []


def test_postgis_only_settings_need_database_url() -> None:
    with pytest.raises(SettingsError) as err:
        load_settings({"DATABASE_READ_URL": "postgresql://standby/db", "DB_PGBOUNCER": "yes"})
    assert [p.split(":")[0] for p in err.value.problems] == ["DATABASE_READ_URL", "DB_PGBOUNCER"]
    with pytest.raises(SettingsError, match="DB_PGBOUNCER: expected true or false"):
        load_settings({"DATABASE_URL": "postgresql://db/x", "DB_PGBOUNCER": "maybe"})
    store = load_settings(
        {
            "DATABASE_URL": "postgresql://db/x",
            "DATABASE_READ_URL": "postgresql://standby/x",
            "DB_PGBOUNCER": "true",
            "DB_READ_MAX_LAG": "5s",
        }
    ).store
    assert (store.db_pgbouncer, store.database_read_url, store.db_read_max_lag_s) == (
        True,
        "postgresql://standby/x",
        5,
    )
