"""Server settings: DB_POOL_SIZE and RATE_LIMIT_OSMAND are parsed, defaulted and named in errors."""

from __future__ import annotations

import pytest

from server.settings import SettingsError, load_settings


def test_db_pool_size_defaults_to_20() -> None:
    assert load_settings({}).db_pool_size == 20


def test_db_pool_size_is_read() -> None:
    assert load_settings({"DB_POOL_SIZE": "32"}).db_pool_size == 32


@pytest.mark.parametrize("raw", ["many", "0", "-3", "2.5"])
def test_bad_db_pool_size_names_the_variable(raw: str) -> None:
    with pytest.raises(SettingsError, match=r"^DB_POOL_SIZE: "):
        load_settings({"DB_POOL_SIZE": raw})


def test_phones_have_their_own_per_fix_budget() -> None:
    settings = load_settings({})
    assert (settings.rate_limit_telemetry.count, settings.rate_limit_telemetry.per_seconds) == (
        10,
        60,
    )
    assert settings.rate_limit_osmand.policy() == "1800;w=60"
    assert load_settings({"RATE_LIMIT_OSMAND": "40/second"}).rate_limit_osmand.policy() == "40;w=1"
    with pytest.raises(SettingsError, match=r"^RATE_LIMIT_OSMAND: "):
        load_settings({"RATE_LIMIT_OSMAND": "lots"})
