"""The ``bustracker`` command as an operator types it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


def bustracker(
    tmp_path: Path, *args: str, stdin: str = "", **env: str
) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    full_env.update({"BUSTRACKER_DATA_DIR": str(tmp_path / "data"), **env})
    return subprocess.run(
        [sys.executable, "-m", "server", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=full_env,
        timeout=60,
    )


def test_device_add_prints_token_once_and_lists(tmp_path: Path) -> None:
    r = bustracker(tmp_path, "device", "add", "bus-07", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert set(out) == {"id", "name", "token"}
    assert out["name"] == "bus-07" and len(out["token"]) > 30
    listed = json.loads(bustracker(tmp_path, "device", "list", "--json").stdout)
    assert [d["name"] for d in listed["devices"]] == ["bus-07"]
    # The token is shown once: it is not stored, so no listing can reveal it.
    assert out["token"] not in (tmp_path / "data" / "bustracker.sqlite3").read_bytes().decode(
        "latin-1"
    )
    dup = bustracker(tmp_path, "device", "add", "bus-07", "--json")
    assert dup.returncode == 2
    assert "exists already" in dup.stderr
    rotated = bustracker(tmp_path, "device", "rotate", str(out["id"]), "--json")
    assert json.loads(rotated.stdout)["token"] != out["token"]
    missing = bustracker(tmp_path, "device", "revoke", "999")
    assert missing.returncode == 2 and "no device with id 999" in missing.stderr


def test_user_add_reads_password_from_stdin(tmp_path: Path) -> None:
    r = bustracker(
        tmp_path,
        "user",
        "add",
        "ops",
        "--role",
        "admin",
        "--password-stdin",
        "--json",
        stdin="long enough password\n",
    )
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["role"] == "admin"
    short = bustracker(tmp_path, "user", "add", "x", "--password-stdin", stdin="short\n")
    assert short.returncode == 2 and "password" in short.stderr
    bad_role = bustracker(
        tmp_path,
        "user",
        "add",
        "y",
        "--role",
        "god",
        "--password-stdin",
        stdin="long enough password\n",
    )
    assert bad_role.returncode == 2 and "--role" in bad_role.stderr


def test_bad_environment_names_the_variable(tmp_path: Path) -> None:
    r = bustracker(tmp_path, "device", "list", JWT_ACCESS_EXPIRY="fifteen minutes")
    assert r.returncode == 2
    assert r.stderr.startswith("bustracker: JWT_ACCESS_EXPIRY:")
    r = bustracker(tmp_path, "device", "list", RATE_LIMIT_TELEMETRY="lots")
    assert "RATE_LIMIT_TELEMETRY" in r.stderr
    r = bustracker(tmp_path, "device", "list", DATABASE_URL="mysql://x")
    assert "DATABASE_URL" in r.stderr


def test_user_list_role_password_delete_keep_the_last_admin(tmp_path: Path) -> None:
    password = "long enough password\n"
    for name, role in (("root", "admin"), ("vera", "viewer")):
        add = ("user", "add", name, "--role", role, "--password-stdin")
        assert bustracker(tmp_path, *add, stdin=password).returncode == 0
    last = bustracker(tmp_path, "user", "role", "root", "viewer")
    assert last.returncode == 2 and "last admin" in last.stderr
    assert bustracker(tmp_path, "user", "delete", "root").returncode == 2
    assert bustracker(tmp_path, "user", "role", "vera", "admin").returncode == 0
    changed = bustracker(tmp_path, "user", "password", "vera", "--password-stdin", stdin=password)
    assert changed.returncode == 0, changed.stderr
    assert bustracker(tmp_path, "user", "delete", "root").returncode == 0
    listed = json.loads(bustracker(tmp_path, "user", "list", "--json").stdout)
    assert listed == {"users": [{"id": 2, "username": "vera", "role": "admin"}]}
    missing = bustracker(tmp_path, "user", "delete", "nobody")
    assert missing.returncode == 2 and "no user named 'nobody'" in missing.stderr
