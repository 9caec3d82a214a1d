"""``bustracker-agent enroll``: trade an operator's one-time code for this unit's device token.

The installer types the code the console (or ``bustracker device code``)
showed. Nothing is written unless the server accepts the code: then the token
goes to a file only the agent's user can read (mode 0600, written atomically)
and the config gets ``server.url`` and ``server.token_file`` (created when
missing; the rest of an existing file, comments included, is kept). A wrong,
expired or used code exits 1 with the server's reason; a config that cannot
be edited exits 2 before the code is spent.
"""

from __future__ import annotations

import os
import pwd
import tempfile
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import tomlkit
from tomlkit.items import Table

DEFAULT_TOKEN_NAME = "device-token"
TIMEOUT_S = 20.0
_REFUSALS = {
    "unknown_code": "the server knows no such enrollment code (check what you typed)",
    "expired_code": "this enrollment code has expired; ask the operator for a new one",
    "used_code": "this enrollment code was used already; ask the operator for a new one",
}


class EnrollError(Exception):
    """Shown as ``bustracker-agent enroll: <message>``; ``code`` is the exit status."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class Enrolled:
    device_id: int
    name: str
    token_file: Path
    config: Path
    created_config: bool


def _read_config(path: Path) -> tomlkit.TOMLDocument:
    if not path.exists():
        return tomlkit.document()
    try:
        return tomlkit.parse(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise EnrollError(f"{path}: can't read config file: {exc.strerror}", 2) from None
    except (tomlkit.exceptions.TOMLKitError, tomllib.TOMLDecodeError) as exc:
        raise EnrollError(f"{path}: not valid TOML: {exc}", 2) from None


def _token_path(doc: tomlkit.TOMLDocument, config: Path, given: str | None) -> Path:
    if given:
        path = Path(given)
    else:
        server = doc.get("server")
        configured = server.get("token_file") if isinstance(server, dict) else None
        path = Path(str(configured)) if configured else Path(DEFAULT_TOKEN_NAME)
    # Relative to the config file, as the agent reads it (agent/settings.py).
    return path if path.is_absolute() else config.resolve().parent / path


def _writable_dir(path: Path, what: str) -> None:
    parent = path.parent
    if not parent.is_dir():
        raise EnrollError(f"{what}: directory {parent} does not exist", 2)
    if not os.access(parent, os.W_OK | os.X_OK):
        raise EnrollError(f"{what}: can't write in {parent} (run as its owner or root)", 2)


def _write_atomic(path: Path, text: str, mode: int, owner: tuple[int, int] | None) -> None:
    """Write ``text`` to a temporary file in ``path``'s directory, then rename it over ``path``."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        if owner is not None:
            os.fchown(fd, *owner)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _redeem(url: str, code: str) -> dict[str, Any]:
    try:
        r = httpx.post(f"{url}/v1/enroll", json={"code": code}, timeout=TIMEOUT_S)
    except httpx.HTTPError as exc:
        raise EnrollError(f"can't reach {url}: {exc}") from None
    try:
        body = r.json()
    except ValueError:
        body = {}
    if r.status_code == 200 and isinstance(body, dict) and isinstance(body.get("token"), str):
        return body
    reason = body.get("error") if isinstance(body, dict) else None
    if reason in _REFUSALS:
        raise EnrollError(f"{reason}: {_REFUSALS[reason]}")
    if r.status_code == 429:
        wait = r.headers.get("retry-after", "a minute")
        raise EnrollError(f"too many enrollment attempts; try again in {wait} s")
    raise EnrollError(f"the server answered {r.status_code}: {reason or r.text[:200]}")


def enroll(
    url: str, code: str, config: Path, token_file: str | None = None, user: str | None = None
) -> Enrolled:
    """Redeem ``code`` at ``url``, then write the token file and the config."""
    url = url.rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise EnrollError(f"--server: must start with http:// or https://, got {url!r}", 2)
    if not code.strip():
        raise EnrollError("--code: empty", 2)
    owner = None
    if user is not None:
        try:
            owner = pwd.getpwnam(user)
        except KeyError:
            raise EnrollError(f"--user: no such user {user!r}", 2) from None
    # Everything that could stop us from writing is checked before the code is spent.
    doc = _read_config(config)
    if "server" in doc and not isinstance(doc["server"], Table):
        raise EnrollError(f"{config}: server must be a table ([server])", 2)
    token_path = _token_path(doc, config, token_file)
    _writable_dir(config, str(config))
    _writable_dir(token_path, "token file")
    answer = _redeem(url, code.strip())
    created = not config.exists()
    agent_user = None if owner is None else (owner.pw_uid, owner.pw_gid)
    _write_atomic(token_path, answer["token"] + "\n", 0o600, agent_user)
    server = doc.get("server")
    if server is None:
        server = tomlkit.table()
        doc["server"] = server
    server["url"] = url
    server["token_file"] = str(token_path)
    if "token" in server:
        del server["token"]  # either token or token_file: the file wins now
    # An existing config keeps its mode and owner; the agent only needs to read it.
    if config.exists():
        st = config.stat()
        _write_atomic(config, tomlkit.dumps(doc), st.st_mode & 0o777, (st.st_uid, st.st_gid))
    else:
        _write_atomic(config, tomlkit.dumps(doc), 0o644, None)
    return Enrolled(int(answer["device_id"]), str(answer.get("name")), token_path, config, created)
