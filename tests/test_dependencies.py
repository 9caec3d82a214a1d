"""Every runtime dependency is imported by the code it is declared for.

A dependency nothing imports is weight on every install (the Pi's most of all)
and a promise nobody keeps; it comes back with the code that uses it.
"""

from __future__ import annotations

import ast
import re
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Loaded by uvicorn itself when installed (a C HTTP parser, a faster loop, WebSockets).
LOADED_BY_UVICORN = {"httptools", "uvloop", "websockets"}


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _declared(extra: str) -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = {
        re.split(r"[<>=!~;\[ ]", d, maxsplit=1)[0] for d in project["optional-dependencies"][extra]
    }
    return {_normal(n) for n in names}


def _imported_distributions(package: str) -> set[str]:
    modules: set[str] = set()
    for path in (ROOT / package).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                modules.update(a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules.add(node.module.split(".")[0])
    dists = packages_distributions()
    return {_normal(d) for m in modules for d in dists.get(m, [])}


@pytest.mark.parametrize("extra", ["agent", "server"])
def test_every_declared_dependency_is_imported(extra: str) -> None:
    unused = _declared(extra) - _imported_distributions(extra) - LOADED_BY_UVICORN
    assert sorted(unused) == []
