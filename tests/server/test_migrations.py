"""One migration layout for both stores: the same versions, under the same names."""

from __future__ import annotations

from pathlib import Path

import pytest

from server.store import migrations
from server.store.migrations import MigrationLayoutError


def layout(root: Path, postgis: list[str], sqlite: list[str]) -> Path:
    for backend, names in (("postgis", postgis), ("sqlite", sqlite)):
        (root / backend).mkdir(parents=True)
        for name in names:
            (root / backend / name).write_text("SELECT 1;\n")
    return root


def test_every_migration_exists_for_both_stores() -> None:
    found = migrations.load()
    postgis = [(m.version, m.name) for m in found["postgis"]]
    assert postgis == [(m.version, m.name) for m in found["sqlite"]]
    assert postgis[0] == (1, "0001_init")
    assert [m.path.parent.name for m in migrations.available("sqlite")] == ["sqlite"] * len(postgis)


def test_a_migration_only_one_store_has_is_refused(tmp_path: Path) -> None:
    root = layout(tmp_path, ["0001_init.sql", "0002_more.sql"], ["0001_init.sql"])
    with pytest.raises(MigrationLayoutError, match=r"only postgis/ has \['0002_more'\]"):
        migrations.load(root)
    # Whichever store is asked for: neither may run ahead of the other.
    with pytest.raises(MigrationLayoutError):
        migrations.available("sqlite", root)


def test_one_version_under_two_names_is_refused(tmp_path: Path) -> None:
    root = layout(tmp_path, ["0001_init.sql", "0002_a.sql"], ["0001_init.sql", "0002_b.sql"])
    with pytest.raises(MigrationLayoutError, match=r"only sqlite/ has \['0002_b'\]"):
        migrations.load(root)


@pytest.mark.parametrize(
    "names",
    [["0001_init.sql", "0003_skipped.sql"], ["0002_first.sql"], ["0001_a.sql", "0001_b.sql"]],
)
def test_versions_run_from_one_without_gaps(tmp_path: Path, names: list[str]) -> None:
    with pytest.raises(MigrationLayoutError, match="numbered 1, 2, 3"):
        migrations.load(layout(tmp_path, names, names))


def test_a_misnamed_file_is_refused(tmp_path: Path) -> None:
    root = layout(tmp_path, ["0001_init.sql", "2_more.sql"], ["0001_init.sql", "2_more.sql"])
    with pytest.raises(MigrationLayoutError, match=r"NNNN_name\.sql"):
        migrations.load(root)
