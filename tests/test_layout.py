"""The Pi installs only the ``agent`` extra: the agent must never need the server."""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Top-level modules that arrive only with the `server` extra (or are the server).
SERVER_ONLY = {
    "server",
    "litestar",
    "uvicorn",
    "websockets",
    "asyncpg",
    "redis",
    "limits",
    "jwt",
    "argon2",
    "prometheus_client",
    "structlog",
    "google",
    "xstatic",
    "msgspec",
}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_agent_source_imports_nothing_of_the_server() -> None:
    offenders = {
        str(p.relative_to(ROOT)): sorted(_imports(p) & SERVER_ONLY)
        for p in (ROOT / "agent").rglob("*.py")
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_server_source_never_imports_the_agent() -> None:
    offenders = [str(p) for p in (ROOT / "server").rglob("*.py") if "agent" in _imports(p)]
    assert offenders == []


def test_every_agent_module_imports_with_server_packages_blocked() -> None:
    modules = sorted(
        ".".join(p.relative_to(ROOT).with_suffix("").parts)
        for p in (ROOT / "agent").rglob("*.py")
        if p.name != "__main__.py"
    )
    blocker = (
        "import sys\n"
        "class Block:\n"
        f"    names = {sorted(SERVER_ONLY)!r}\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in self.names:\n"
        "            raise ImportError('server-only module imported by the agent: ' + name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "import importlib\n"
        f"for m in {modules!r}:\n"
        "    importlib.import_module(m)\n"
    )
    r = subprocess.run([sys.executable, "-c", blocker], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_agent_extra_carries_no_server_dependency() -> None:
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    agent = {req.split(">")[0].split("=")[0].split("[")[0].lower() for req in extras["agent"]}
    server_pkgs = {
        "litestar",
        "uvicorn",
        "asyncpg",
        "redis",
        "limits",
        "pyjwt",
        "argon2-cffi",
        "structlog",
        "prometheus-client",
        "websockets",
    }
    assert agent & server_pkgs == set()
