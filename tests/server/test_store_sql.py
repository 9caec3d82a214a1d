"""The statements both stores share: written once with ``?``, numbered for PostgreSQL."""

from __future__ import annotations

import re
from dataclasses import fields

import pytest

from server.store.sql import POSTGRES, SQLITE, numbered


def test_placeholders_are_numbered_in_order() -> None:
    assert numbered("SELECT a FROM t WHERE b = ? AND c < ?") == (
        "SELECT a FROM t WHERE b = $1 AND c < $2"
    )
    assert numbered("SELECT 1") == "SELECT 1"
    with pytest.raises(ValueError, match="already numbered"):
        numbered("SELECT $1")


def test_both_dialects_bind_the_same_arguments() -> None:
    for field in fields(SQLITE):
        sqlite, postgres = getattr(SQLITE, field.name), getattr(POSTGRES, field.name)
        assert "?" not in postgres, field.name
        marks = [int(n) for n in re.findall(r"\$(\d+)", postgres)]
        assert marks == list(range(1, sqlite.count("?") + 1)), field.name
        assert re.sub(r"\$\d+", "?", postgres) == sqlite
