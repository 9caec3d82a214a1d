"""deploy/docker-compose.yml, checked by a real compose implementation (Debian's
docker-compose, whose `config` validates against the compose schema without a daemon),
then read back as compose resolved it."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from server.cli import build_parser
from server.settings import _section_fields as section_fields
from tests.service_procs import _missing

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
OUR_IMAGE = "bustracker:latest"


def _compose(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("docker-compose")
    if binary is None:
        _missing("docker-compose", "docker-compose")
    return subprocess.run(
        [
            binary,
            "--project-directory",
            str(project),
            "-f",
            str(project / "docker-compose.yml"),
            *args,
        ],
        capture_output=True,
        text=True,
        cwd=project,
    )


def _project(tmp_path: Path, text: str | None = None) -> Path:
    """deploy/ as an operator lays it out: the compose file, nginx.conf, .env from the example."""
    shutil.copy(DEPLOY / "nginx.conf", tmp_path / "nginx.conf")
    shutil.copy(DEPLOY / ".env.example", tmp_path / ".env")
    compose = text if text is not None else (DEPLOY / "docker-compose.yml").read_text()
    (tmp_path / "docker-compose.yml").write_text(compose)
    return tmp_path


@pytest.fixture(scope="module")
def resolved(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    result = _compose(_project(tmp_path_factory.mktemp("compose")), "config")
    assert result.returncode == 0, result.stderr
    config: dict[str, Any] = yaml.safe_load(result.stdout)
    return config


def test_compose_validates_the_file(resolved: dict[str, Any]) -> None:
    assert set(resolved["services"]) == {
        "postgres",
        "redis",
        "migrate",
        "api1",
        "api2",
        "worker",
        "nginx",
    }


def test_the_validator_rejects_a_mistyped_key(tmp_path: Path) -> None:
    # Proof that `config` checks the schema rather than only parsing YAML.
    text = (DEPLOY / "docker-compose.yml").read_text().replace("retries: 5", "retrys: 5", 1)
    result = _compose(_project(tmp_path, text), "config", "-q")
    assert result.returncode != 0
    assert "retrys" in result.stderr


def test_long_running_services_have_healthchecks(resolved: dict[str, Any]) -> None:
    services = resolved["services"]
    # migrate runs once; the worker has no port to probe (it is restarted if it dies).
    for name in ("postgres", "redis", "api1", "api2", "nginx"):
        assert services[name]["healthcheck"]["test"], name
        assert services[name]["restart"] == "unless-stopped", name
    for name in ("api1", "api2", "nginx"):
        assert all(
            dep.get("condition") in ("service_healthy", "service_completed_successfully")
            for dep in services[name]["depends_on"].values()
        ), name


def test_api_processes_wait_for_the_migration(resolved: dict[str, Any]) -> None:
    for name in ("api1", "api2", "worker"):
        depends = resolved["services"][name]["depends_on"]
        assert depends["migrate"]["condition"] == "service_completed_successfully"


def test_data_lives_in_volumes(resolved: dict[str, Any]) -> None:
    services = resolved["services"]
    assert "/var/lib/postgresql/data" in {_target(v) for v in services["postgres"]["volumes"]}
    assert "/data" in {_target(v) for v in services["redis"]["volumes"]}
    assert {"postgres_data", "redis_data"} <= set(resolved["volumes"])


def _target(volume: Any) -> str:
    return str(volume["target"]) if isinstance(volume, dict) else str(volume).split(":")[1]


REQUIRED_SECRETS = {"DATABASE_URL", "REDIS_URL", "JWT_SECRET"}


def _secret_variables() -> set[str]:
    return {f.metadata["env"] for _, f in section_fields() if f.metadata.get("secret")}


def test_secrets_reach_the_server_only_as_files(resolved: dict[str, Any]) -> None:
    secrets = _secret_variables()
    for name, service in resolved["services"].items():
        if service.get("image") != OUR_IMAGE:
            continue
        env = service.get("environment", {})
        # No secret in the environment itself, each one through a *_FILE the server reads...
        assert not secrets & set(env), name
        mounted = {f"/run/secrets/{s['source']}" for s in service["secrets"]}
        # The ones every deployment has; the optional ones (SMTP, Sentry, a read replica)
        # an operator adds the same way, and any given must be a mounted file too.
        for secret in REQUIRED_SECRETS:
            assert f"{secret}_FILE" in env, (name, secret)
        for secret in secrets:
            if f"{secret}_FILE" in env:
                assert env[f"{secret}_FILE"] in mounted, (name, secret)
    # ...from a file that exists in the operator's secrets/ directory, not in the file.
    for secret in resolved["secrets"].values():
        assert "/secrets/" in secret["file"]
    postgres = resolved["services"]["postgres"]
    assert postgres["environment"]["POSTGRES_PASSWORD_FILE"].startswith("/run/secrets/")
    assert "POSTGRES_PASSWORD" not in postgres["environment"]


def test_our_services_run_commands_the_cli_knows(resolved: dict[str, Any]) -> None:
    parser = build_parser()
    unknown = set()
    for name, service in resolved["services"].items():
        if service.get("image") != OUR_IMAGE:
            continue
        command = service["command"]
        command = shlex.split(command) if isinstance(command, str) else command
        assert command[0] == "bustracker", name
        try:
            parser.parse_args(command[1:])
        except SystemExit:
            unknown.add(command[1])
    assert unknown == set()


def test_nginx_upstreams_are_the_api_services(resolved: dict[str, Any]) -> None:
    conf = (DEPLOY / "nginx.conf").read_text()
    upstreams = set(re.findall(r"^\s*server ([\w.-]+):(\d+) ", conf, re.M))
    apis = {
        (name, s["command"][s["command"].index("--port") + 1])
        for name, s in resolved["services"].items()
        if "serve" in s.get("command", [])
    }
    assert upstreams == apis
    nginx = resolved["services"]["nginx"]
    assert any("/etc/nginx/conf.d/default.conf" in str(v) for v in nginx["volumes"])
