"""Process plumbing shared by the throwaway test services: ports, ownership, clean-up."""

from __future__ import annotations

import asyncio
import concurrent.futures
import ctypes
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import pytest

TEMPLATE_DB = "bustracker_template"
STARTUP_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
# A port picked by free_port() can be taken by someone else before the server binds it.
BIND_ATTEMPTS = 3

T = TypeVar("T")

# Seconds each service took to come up, reported at the end of the run.
_startup_seconds: dict[str, float] = {}


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def _missing(what: str, debian_package: str) -> NoReturn:
    message = f"{what} not found: install the Debian package {debian_package}"
    if in_ci():
        pytest.fail(f"{message} (CI must have it; .ci/run installs it)", pytrace=False)
    pytest.skip(message)


def _fail_with_log(message: str, log: Path) -> NoReturn:
    try:
        text = log.read_text(errors="replace")[-8000:]
    except OSError as exc:
        text = f"(log unreadable: {exc})"
    pytest.fail(f"{message}\n--- {log} ---\n{text}", pytrace=False)


_PR_SET_PDEATHSIG = 1


def _die_with_parent(sig: signal.Signals) -> Callable[[], None] | None:
    """A preexec_fn that has the kernel send `sig` to the child when pytest dies.

    try/finally and atexit do not run when pytest is SIGKILLed, killed by SIGTERM (no Python
    handler) or ended with os._exit (pytest-timeout's thread method); this does.
    """
    if not sys.platform.startswith("linux"):
        return None
    # Resolve the symbol before fork: the child should do as little as possible.
    prctl = ctypes.CDLL(None, use_errno=True).prctl

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, int(sig))

    return preexec


class _Owner:
    """Who runs a server: ourselves, or the `postgres` user when we are root."""

    def __init__(self, username: str | None) -> None:
        self.username = username
        self.uid: int | None = None
        self.gid: int | None = None
        if username is not None:
            entry = pwd.getpwnam(username)
            self.uid, self.gid = entry.pw_uid, entry.pw_gid

    def chown(self, path: Path) -> None:
        if self.uid is not None and self.gid is not None:
            os.chown(path, self.uid, self.gid)

    def popen_kwargs(self) -> dict[str, Any]:
        # Popen switches uid/gid after fork and before preexec_fn, so the parent-death signal
        # (which the kernel clears on a credential change) survives; `runuser` would fork again.
        if self.uid is None:
            return {}
        return {"user": self.uid, "group": self.gid, "extra_groups": []}


def _run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion from sync code, even while the caller's loop runs.

    pytest-asyncio may have a loop running in this thread; a fresh thread has none.
    """
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="pg-admin") as pool:
        return pool.submit(asyncio.run, coro).result()


_DIR_PREFIXES = ("bustracker-pg-", "bustracker-redis-", "bustracker-pgb-", "bustracker-standby-")
_OWNER_FILE = "pytest.pid"


def _session_dir(prefix: str, parent: str | None = None) -> Path:
    """A temp dir for one server, tagged with our pid so a later session can sweep it."""
    _sweep_dead_sessions()
    base = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    (base / _OWNER_FILE).write_text(str(os.getpid()))
    return base


def _sweep_dead_sessions() -> None:
    """Remove dirs left by sessions that were killed (SIGTERM from `timeout`, SIGKILL).

    Only on Linux, where the parent-death signal guarantees their servers died too.
    """
    if not sys.platform.startswith("linux"):
        return
    for parent in {Path("/tmp"), Path(tempfile.gettempdir())}:
        for base in parent.glob("bustracker-*-*"):
            if not base.name.startswith(_DIR_PREFIXES):
                continue
            try:
                pid = int((base / _OWNER_FILE).read_text())
            except (OSError, ValueError):
                continue  # Being created right now, or not ours to judge.
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                shutil.rmtree(base, ignore_errors=True)
            except PermissionError:
                pass  # Alive, run by another user.


def _run_checked(argv: Sequence[str], owner: _Owner, cwd: Path, what: str) -> None:
    result = subprocess.run(
        list(argv),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        cwd=cwd,
        **owner.popen_kwargs(),
    )
    if result.returncode != 0:
        pytest.fail(
            f"{what} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}",
            pytrace=False,
        )
