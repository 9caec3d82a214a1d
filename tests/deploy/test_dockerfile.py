"""deploy/Dockerfile (no container engine here): its stages, user and inputs, and its
HEALTHCHECK command run for real against a server."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from server.cli import build_parser
from tests.server.running import RunningServer, make_settings
from tests.services import free_port

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "deploy" / "Dockerfile"


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments), continuation lines joined, comments dropped."""
    joined = DOCKERFILE.read_text().replace("\\\n", " ")
    out = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), " ".join(rest.split())))
    return out


def _final_stage() -> list[tuple[str, str]]:
    steps = _instructions()
    last_from = max(i for i, (word, _) in enumerate(steps) if word == "FROM")
    return steps[last_from:]


def test_build_is_multi_stage_and_runs_as_an_unprivileged_user() -> None:
    stages = [args for word, args in _instructions() if word == "FROM"]
    assert len(stages) >= 2
    final = _final_stage()
    users = [args for word, args in final if word == "USER"]
    assert users and users[-1] not in ("root", "0")
    # The build tools stay behind: the final stage copies the built venv, installs no wheels.
    assert any(w == "COPY" and a.startswith("--from=") for w, a in final)
    assert not any(w == "RUN" and "pip install" in a for w, a in final)


def test_everything_copied_exists_and_secrets_stay_out_of_the_context() -> None:
    for word, args in _instructions():
        if word == "COPY" and not args.startswith("--from="):
            for source in args.split()[:-1]:
                assert (ROOT / source).exists(), source
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {"deploy/secrets", "deploy/.env", ".git"} <= set(ignored)


def test_default_command_is_one_the_cli_knows() -> None:
    cmd = json.loads(next(a for w, a in _final_stage() if w == "CMD"))
    assert cmd[0] == "bustracker"
    args = build_parser().parse_args(cmd[1:])
    assert (args.command, args.host, args.port) == ("serve", "0.0.0.0", 3000)


def _healthcheck(port: int) -> int:
    args = next(a for w, a in _final_stage() if w == "HEALTHCHECK")
    argv = json.loads(args.split("CMD", 1)[1])
    assert argv[0] == "python"
    code = argv[2].replace("127.0.0.1:3000", f"127.0.0.1:{port}")
    assert code != argv[2], "the health check no longer probes port 3000"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=30).returncode


def test_healthcheck_passes_on_a_healthy_server_and_fails_without_one(tmp_path: Path) -> None:
    server = RunningServer(make_settings(tmp_path)).start()
    try:
        assert _healthcheck(int(server.url.rsplit(":", 1)[1])) == 0
    finally:
        server.stop()
    assert _healthcheck(free_port()) != 0
