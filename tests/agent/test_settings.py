from __future__ import annotations

from pathlib import Path

import pytest

from agent.settings import BUILD_YEAR, ConfigError, load_settings, parse_settings, redacted

MINIMAL = {"server": {"url": "https://bus.example.org", "token": "t0k"}}


def problems(data: dict[str, object], env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_settings(data, env)
    return info.value.problems


def test_defaults_are_documented_values() -> None:
    s = parse_settings(MINIMAL)
    assert s.buffer.max_mb == 100.0
    assert s.gps.source == "gpsd" and s.gps.port == 2947
    assert s.upload.max_batch == 500 and s.upload.gzip is True
    assert s.filter.max_speed_ms == 60.0
    assert s.status_path == s.buffer.path.with_name("status.json")


def test_bad_value_names_key_and_range() -> None:
    got = problems({**MINIMAL, "upload": {"max_batch": "x"}})
    assert got == ['upload.max_batch: must be an integer >= 1, got "x"']


def test_out_of_range_and_wrong_type() -> None:
    got = problems({**MINIMAL, "upload": {"max_batch": 0, "gzip": "yes"}, "buffer": {"max_mb": -1}})
    assert "upload.max_batch: must be an integer >= 1, got 0" in got
    assert 'upload.gzip: must be a boolean, got "yes"' in got
    assert "buffer.max_mb: must be a number > 0, got -1" in got


def test_unknown_keys_and_sections_are_errors() -> None:
    got = problems({**MINIMAL, "upload": {"max_batchh": 5}, "uplod": {}})
    assert "upload.max_batchh: unknown key" in got
    assert "uplod: unknown section" in got


def test_min_year_defaults_to_the_build_year_and_is_validated() -> None:
    assert parse_settings(MINIMAL).filter.min_year == BUILD_YEAR
    assert parse_settings({**MINIMAL, "filter": {"min_year": 2005}}).filter.min_year == 2005
    env = {"BUSTRACKER_AGENT__FILTER__MIN_YEAR": "2019"}
    assert parse_settings(MINIMAL, env).filter.min_year == 2019
    got = problems({**MINIMAL, "filter": {"min_year": 1970}})
    assert got == ["filter.min_year: must be an integer >= 1980, got 1970"]
    got = problems({**MINIMAL, "filter": {"min_year": "2005"}})
    assert got == ['filter.min_year: must be an integer >= 1980, got "2005"']


def test_literal_choices() -> None:
    got = problems({**MINIMAL, "gps": {"source": "usb"}})
    assert got == ['gps.source: must be one of "gpsd", "serial", "replay", got "usb"']


def test_cross_checks() -> None:
    got = problems(
        {
            "server": {"url": "ftp://x", "token": "a", "token_file": "/t"},
            "gps": {"source": "replay"},
        }
    )
    assert 'server.url: must start with http:// or https://, got "ftp://x"' in got
    assert "server.token: set either token or token_file, not both" in got
    assert 'gps.path: required when gps.source = "replay"' in got


def test_missing_token_is_not_a_config_error() -> None:
    # The running agent shows config_error and keeps capturing instead.
    s = parse_settings({"server": {"url": "http://127.0.0.1:1"}})
    assert s.server.token is None and s.server.token_file is None


def test_env_overrides_are_typed() -> None:
    env = {
        "BUSTRACKER_AGENT__UPLOAD__MAX_BATCH": "250",
        "BUSTRACKER_AGENT__UPLOAD__GZIP": "false",
        "BUSTRACKER_AGENT__FILTER__MAX_SPEED_MS": "40.5",
        "bustracker_agent__server__token": "from-env",
        "UNRELATED": "x",
    }
    s = parse_settings(MINIMAL, env)
    assert s.upload.max_batch == 250
    assert s.upload.gzip is False
    assert s.filter.max_speed_ms == 40.5
    assert s.server.token == "from-env"


def test_env_errors_name_the_variable() -> None:
    got = problems(
        MINIMAL,
        {
            "BUSTRACKER_AGENT__UPLOAD__MAX_BATCH": "many",
            "BUSTRACKER_AGENT__NOPE": "1",
            "BUSTRACKER_AGENT__UPLOAD__NOPE": "1",
        },
    )
    assert (
        'BUSTRACKER_AGENT__UPLOAD__MAX_BATCH: upload.max_batch: must be an integer >= 1, got "many"'
    ) in got
    assert any(p.startswith("BUSTRACKER_AGENT__NOPE: not a setting") for p in got)
    assert "BUSTRACKER_AGENT__UPLOAD__NOPE: upload.nope: unknown key" in got


def test_env_near_miss_is_an_error_not_ignored() -> None:
    got = problems(MINIMAL, {"BUSTRACKER_AGENT_BUFFER__PATH": "/x"})
    assert got == [
        "BUSTRACKER_AGENT_BUFFER__PATH: not a setting (use BUSTRACKER_AGENT__<SECTION>__<KEY>)"
    ]


def test_load_file_resolves_relative_paths(tmp_path: Path) -> None:
    cfg = tmp_path / "agent.toml"
    cfg.write_text(
        '[server]\nurl = "http://127.0.0.1:9"\ntoken_file = "token"\n'
        '[buffer]\npath = "data/buf.sqlite"\nmax_mb = 5\n'
        '[gps]\nsource = "replay"\npath = "route.nmea"\nspeed = 0\n'
    )
    s = load_settings(cfg, env={})
    assert s.server.token_file == tmp_path / "token"
    assert s.buffer.path == tmp_path / "data/buf.sqlite"
    assert s.buffer.max_mb == 5.0
    assert s.gps.path == tmp_path / "route.nmea" and s.gps.speed == 0.0
    assert s.status_path == tmp_path / "data/status.json"


def test_load_file_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_settings(tmp_path / "missing.toml", env={})
    bad = tmp_path / "bad.toml"
    bad.write_text("[server\nurl=")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(bad, env={})


def test_redacted_hides_token() -> None:
    out = redacted(parse_settings(MINIMAL))
    assert out["server"]["token"] == "***"
    assert out["buffer"]["path"] == "/var/lib/bustracker/buffer.sqlite3"
