"""A throwaway redis-server for the test suite."""

from __future__ import annotations

import atexit
import contextlib
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.service_procs import (
    BIND_ATTEMPTS,
    STARTUP_TIMEOUT,
    STOP_TIMEOUT,
    _die_with_parent,
    _fail_with_log,
    _missing,
    _session_dir,
    _startup_seconds,
    free_port,
)


def _redis_call(port: int, *args: str, timeout: float = 5.0) -> bytes:
    """One command over raw RESP: a sync client with no dependency and no event loop."""
    payload = f"*{len(args)}\r\n".encode()
    for arg in args:
        data = arg.encode()
        payload += b"$%d\r\n%s\r\n" % (len(data), data)
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(payload)
        reply = b""
        while not reply.endswith(b"\r\n"):
            chunk = sock.recv(4096)
            if not chunk:
                break
            reply += chunk
    return reply.strip()


class _RedisProcess:
    def __init__(self, binary: str, base: Path) -> None:
        self.binary = binary
        self.base = base
        self.log = base / "redis.log"
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, port: int) -> bool:
        """True once PING answers; False if redis-server exited (e.g. the port was taken)."""
        self.port = port
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [
                    self.binary,
                    "--port",
                    str(port),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--dir",
                    str(self.base),
                    "--logfile",
                    "",
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.base,
                preexec_fn=_die_with_parent(signal.SIGTERM),
            )
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            with contextlib.suppress(OSError):
                if _redis_call(port, "PING", timeout=1.0) == b"+PONG":
                    return True
            time.sleep(0.02)
        self.stop()
        _fail_with_log(f"redis-server not answering PING within {STARTUP_TIMEOUT:.0f} s", self.log)

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def stop_and_clean(self) -> None:
        self.stop()
        shutil.rmtree(self.base, ignore_errors=True)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[str]:
    """URL (`redis://127.0.0.1:PORT/0`) of a private redis-server for the whole session."""
    binary = shutil.which("redis-server")
    if binary is None:
        _missing("redis-server", "redis-server")
    started = time.monotonic()
    server = _RedisProcess(binary, _session_dir("bustracker-redis-"))
    atexit.register(server.stop_and_clean)
    try:
        for attempt in range(BIND_ATTEMPTS):
            if server.start(free_port()):
                break
            taken = "already in use" in server.log.read_text(errors="replace")
            if not taken or attempt == BIND_ATTEMPTS - 1:
                _fail_with_log("redis-server exited during startup", server.log)
        _startup_seconds["Redis"] = time.monotonic() - started
        yield f"redis://127.0.0.1:{server.port}/0"
    finally:
        server.stop_and_clean()
        atexit.unregister(server.stop_and_clean)


@pytest.fixture
def redis_url(redis_server: str) -> str:
    """The session Redis, emptied so this test starts from nothing."""
    port = urlsplit(redis_server).port
    assert port is not None
    reply = _redis_call(port, "FLUSHALL")
    if reply != b"+OK":
        raise RuntimeError(f"FLUSHALL answered {reply!r}")
    return redis_server
