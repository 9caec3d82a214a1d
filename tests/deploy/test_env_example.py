"""deploy/.env.example lists every variable the server reads, each with its meaning and a
default that is the server's real default (read back through the server's own parser)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from server.settings import Settings, _section_fields, load_settings, variables

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "deploy" / ".env.example"

ASSIGNMENT = re.compile(r"^(#?)([A-Z][A-Z0-9_]*)=(.*)$")


def _entries() -> dict[str, tuple[bool, str, list[str]]]:
    """NAME -> (commented out, value, the comment lines just above it)."""
    entries: dict[str, tuple[bool, str, list[str]]] = {}
    comments: list[str] = []
    for line in EXAMPLE.read_text().splitlines():
        m = ASSIGNMENT.match(line)
        if m:
            name = m.group(2)
            assert name not in entries, f"{name} is listed twice"
            entries[name] = (m.group(1) == "#", m.group(3), comments)
            continue
        comments = [*comments, line] if line.startswith("# ") else []
    return entries


def _field(name: str) -> tuple[str, Any]:
    for section, f in _section_fields():
        if f.metadata.get("env") == name:
            return section, f
    raise KeyError(name)


def test_lists_every_variable_the_server_reads() -> None:
    assert sorted(set(variables()) - set(_entries())) == []


def test_lists_no_variable_the_server_does_not_read() -> None:
    secrets = {f.metadata["env"] for _, f in _section_fields() if f.metadata.get("secret")}
    known = set(variables()) | {f"{s}_FILE" for s in secrets}
    assert set(_entries()) - known == set()


@pytest.mark.parametrize("name", sorted(variables()))
def test_each_variable_has_a_meaning_and_its_true_default(name: str) -> None:
    commented, value, comments = _entries()[name]
    text = " ".join(c.removeprefix("# ") for c in comments)
    assert "Default:" in text, f"{name}: no 'Default:' in the comment above it"
    assert len(text.split("Default:")[0].split()) >= 3, f"{name}: say what it means"
    # A commented line shows the default: it must be the value the server uses when unset.
    assert commented, f"{name}: the example sets a value; leave the default commented out"
    section, f = _field(name)
    default = getattr(getattr(Settings(), section), f.name)
    if value == "":
        # Unset: the server's default is "none" (or, for JWT_SECRET, random per process).
        assert default in (None, ()) or f.metadata["secret"], name
        return
    parsed = getattr(getattr(load_settings({name: value}), section), f.name)
    assert parsed == default, (
        f"{name}={value} parses to {parsed!r}; the server's default is {default!r}"
    )
