"""Real GPS plumbing for the agent tests: gpsd fed by gpsfake, pty pairs from socat,
and a helper that runs a source's loop in a thread and collects what it yields."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

import pytest

from agent.fix import Fix
from agent.sources import GpsSource
from tests.services import free_port, in_ci

DATA = Path(__file__).parent / "data"
WAIT = 30.0  # generous: the machine is shared and noisy; nothing here asserts a duration


def _missing(tool: str, package: str) -> NoReturn:
    message = f"{tool} not found: install the Debian package {package}"
    if in_ci():
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def _kill(proc: subprocess.Popen[bytes]) -> None:
    """End a process we started in its own session, with its children (gpsfake's gpsd)."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
    else:
        # gpsfake gone; its gpsd may linger in the same process group.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)


class GpsFake:
    """Factory: ``gpsfake(nmea_path, cycle=0.05, port=None) -> (host, port)``.

    Runs a real gpsd fed once through a pty (``-1``), reading at once (``-n``),
    so sentences sent before a client connects are consumed, not queued up and
    replayed in a burst: give logs a lead-in of no-fix epochs. Returns when the
    port accepts connections. ``kill(port)`` makes that gpsd vanish.
    """

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.procs: dict[int, subprocess.Popen[bytes]] = {}

    def __call__(
        self, nmea_path: Path | str, cycle: float = 0.05, port: int | None = None
    ) -> tuple[str, int]:
        port = port or free_port()
        log = self.workdir / f"gpsfake-{port}-{len(self.procs)}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                ["gpsfake", "-n", "-1", "-q", "-c", str(cycle), "-P", str(port), str(nmea_path)],
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                # gpsfake leaves its control socket in $TMPDIR; keep it in ours.
                env={**os.environ, "TMPDIR": str(self.workdir)},
            )
        self.procs[port] = proc
        deadline = time.monotonic() + WAIT
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1.0).close()
                return "127.0.0.1", port
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    self.kill(port)
                    pytest.fail(f"gpsfake did not listen on {port}:\n{log.read_text()}")
                time.sleep(0.02)

    def kill(self, port: int) -> None:
        # SIGKILL to the whole group (gpsfake and its gpsd): gpsfake's own
        # SIGTERM handler can deadlock inside Popen.poll() and never exit.
        proc = self.procs.pop(port)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=WAIT)


@pytest.fixture
def gpsfake() -> Iterator[GpsFake]:
    if shutil.which("gpsfake") is None or shutil.which("gpsd") is None:
        _missing("gpsfake/gpsd", "gpsd-clients and gpsd")
    # Short path: gpsd's control socket must fit in sun_path (108 bytes).
    workdir = Path(tempfile.mkdtemp(prefix="gpsfake-"))
    factory = GpsFake(workdir)
    try:
        yield factory
    finally:
        for port in list(factory.procs):
            factory.kill(port)
        shutil.rmtree(workdir, ignore_errors=True)


@dataclass
class BareGpsd:
    """A real gpsd with no receiver open: it answers clients all the same."""

    port: int
    control: Path

    def add(self, device: str) -> None:
        """Plug a receiver in, as gpsd's hotplug script does (on its control socket)."""
        with socket.socket(socket.AF_UNIX) as ctl:
            ctl.connect(str(self.control))
            ctl.sendall(f"+{device}\n".encode())
            reply = ctl.recv(16)
        assert reply.startswith(b"OK"), f"gpsd refused {device}: {reply!r}"


@pytest.fixture
def bare_gpsd() -> Iterator[BareGpsd]:
    if shutil.which("gpsd") is None:
        _missing("gpsd", "gpsd")
    port = free_port()
    workdir = Path(tempfile.mkdtemp(prefix="gpsd-"))  # short: the control socket's sun_path
    proc = subprocess.Popen(
        ["gpsd", "-N", "-n", "-S", str(port), "-F", str(workdir / "ctl")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + WAIT
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1.0).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"gpsd did not listen on {port}")
                time.sleep(0.02)
        yield BareGpsd(port, workdir / "ctl")
    finally:
        proc.kill()
        proc.wait(timeout=WAIT)
        shutil.rmtree(workdir, ignore_errors=True)


@dataclass
class PtyPair:
    """Two ends of a socat pty pair: write NMEA to ``writer``, the source reads ``reader``."""

    proc: subprocess.Popen[bytes]
    writer: str
    reader: str
    _fd: int | None = None

    def write(self, data: bytes) -> None:
        # Kept open: closing the last fd of a pty end makes socat see EOF and quit.
        if self._fd is None:
            self._fd = os.open(self.writer, os.O_WRONLY | os.O_NOCTTY)
        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view) :]

    def unplug(self) -> None:
        """Like pulling the USB cable: the tty the source holds goes dead."""
        _kill(self.proc)
        self.close()

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


@pytest.fixture
def pty_pair() -> Iterator[Callable[[], PtyPair]]:
    """Factory for ``socat -d -d pty,raw,echo=0 pty,raw,echo=0`` pairs, killed at teardown."""
    if shutil.which("socat") is None:
        _missing("socat", "socat")
    pairs: list[PtyPair] = []

    def start() -> PtyPair:
        proc = subprocess.Popen(
            ["socat", "-d", "-d", "pty,raw,echo=0", "pty,raw,echo=0"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        assert proc.stderr is not None
        paths: list[str] = []
        seen = b""
        # socat logs "N PTY is /dev/pts/X" for each end, then "starting data transfer loop".
        while len(paths) < 2:
            line = proc.stderr.readline()
            if not line:
                _kill(proc)
                pytest.fail(f"socat exited before opening two ptys:\n{seen.decode()}")
            seen += line
            match = re.search(rb"PTY is (\S+)", line)
            if match:
                paths.append(match.group(1).decode())
        pair = PtyPair(proc, writer=paths[0], reader=paths[1])
        pairs.append(pair)
        return pair

    yield start
    for pair in pairs:
        _kill(pair.proc)
        pair.close()
        if pair.proc.stderr is not None:
            pair.proc.stderr.close()


@dataclass
class Running:
    """A source's ``fixes()`` loop running in a thread, with everything it yielded."""

    source: GpsSource
    stop: threading.Event = field(default_factory=threading.Event)
    items: list[Fix | None] = field(default_factory=list)
    error: BaseException | None = None
    finished: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def run(self) -> None:
        try:
            for item in self.source.fixes(self.stop):
                with self._lock:
                    self.items.append(item)
        except BaseException as exc:
            self.error = exc
        finally:
            self.finished.set()

    @property
    def fixes(self) -> list[Fix]:
        with self._lock:
            return [item for item in self.items if item is not None]

    @property
    def nones(self) -> int:
        with self._lock:
            return sum(1 for item in self.items if item is None)

    def wait_for(
        self, predicate: Callable[[Running], bool], what: str, timeout: float = WAIT
    ) -> None:
        deadline = time.monotonic() + timeout
        while not predicate(self):
            if self.error is not None:
                raise AssertionError(f"source crashed while waiting for {what}") from self.error
            if self.finished.is_set() and not predicate(self):
                raise AssertionError(f"source ended before {what}; got {self.items!r}")
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}; got {self.items!r}")
            time.sleep(0.01)

    def wait_fixes(self, count: int, timeout: float = WAIT) -> list[Fix]:
        self.wait_for(lambda r: len(r.fixes) >= count, f"{count} fixes", timeout)
        return self.fixes


RunSource = Callable[[GpsSource], Running]


@pytest.fixture
def run_source() -> Iterator[RunSource]:
    """Start ``source.fixes(stop)`` in a thread; stopped (and checked to stop) at teardown."""
    started: list[tuple[Running, threading.Thread]] = []

    def start(source: GpsSource) -> Running:
        running = Running(source)
        thread = threading.Thread(target=running.run, daemon=True)
        thread.start()
        started.append((running, thread))
        return running

    yield start
    for running, _thread in started:
        running.stop.set()
    for running, thread in started:
        thread.join(WAIT)
        assert not thread.is_alive(), "source did not return after stop was set"
        if running.error is not None:
            raise running.error
