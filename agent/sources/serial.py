"""Fixes from an NMEA receiver on a serial port (UART HAT or USB), without gpsd.

The port is expected to come and go: a USB receiver unplugged by a bump, a
udev symlink (``/dev/gps0``) that vanishes and reappears pointing at another
tty. The source keeps reopening the same path, logs the outage once, and
carries on; the epoch assembler starts fresh on each reopen so a half epoch
from before the unplug never merges with the first one after it.
"""

from __future__ import annotations

import logging
import select
import threading
import time
from collections.abc import Iterator

import serial

from agent.fix import Fix
from agent.nmea import EpochAssembler
from agent.sources.ticks import IdleTicks

log = logging.getLogger(__name__)

# Longest single wait between looks at the stop event.
# NMEA sentences are at most 82 characters; anything this long without a
# newline is a wrong baud rate or binary protocol, not a sentence in progress.
_MAX_LINE = 4096
# A receiver sends every second; this long without a sentence, it is not talking.
QUIET_S = 5.0


class SerialSource:
    """Read NMEA from ``device`` with pyserial and assemble it into fixes."""

    def __init__(
        self,
        device: str,
        baud: int = 9600,
        read_timeout: float = 1.0,
        reopen_delay: float = 1.0,
        idle_s: float = 1.0,
        quiet_s: float = QUIET_S,
    ) -> None:
        self.device = device
        self.baud = baud
        self.read_timeout = read_timeout
        self.reopen_delay = reopen_delay
        self.idle_s = idle_s
        self.quiet_s = quiet_s
        # Open is not talking: a Pi's /dev/serial0 opens with no HAT on it, and a
        # wrong baud reads as garbage. Connected means NMEA came within quiet_s.
        self.port_open = False
        self.connected = False
        self.last_error: str | None = None
        # Since the port last opened: NMEA sentences read, and lines that were not
        # (a wrong baud reads as garbage; a port with nothing on it reads nothing).
        self.sentences = 0
        self.unreadable = 0
        self._outage_logged = False
        self._ticks = IdleTicks(idle_s)

    def fixes(self, stop: threading.Event) -> Iterator[Fix | None]:
        self._ticks.restart()
        while not stop.is_set():
            port = self._open()
            if port is None:
                yield from self._ticks.pause(stop, self.reopen_delay)
                continue
            try:
                yield from self._session(port, stop)
            finally:
                self.connected = self.port_open = False
                port.close()

    def _open(self) -> serial.Serial | None:
        try:
            # Non-blocking: _session waits with select() in slices it chooses,
            # so idle ticks keep their rhythm and a stop request is seen quickly.
            port = serial.Serial(self.device, self.baud, timeout=0)
        except (serial.SerialException, OSError, ValueError) as exc:
            self.last_error = f"unavailable ({exc})"
            if not self._outage_logged:
                log.warning(
                    "GPS serial port %s unavailable (%s); retrying every %.1f s",
                    self.device,
                    exc,
                    self.reopen_delay,
                )
                self._outage_logged = True
            else:
                log.debug("GPS serial port %s still unavailable: %s", self.device, exc)
            return None
        log.info(
            "GPS serial port %s %s",
            self.device,
            "is back" if self._outage_logged else "opened",
        )
        self._outage_logged = False
        self.port_open = True
        return port

    def _session(self, port: serial.Serial, stop: threading.Event) -> Iterator[Fix | None]:
        """Read one open port until it fails or ``stop`` is set."""
        assembler = EpochAssembler()
        self.sentences = self.unreadable = 0
        buf = b""
        last_data = last_nmea = time.monotonic()
        while not stop.is_set():
            try:
                ready, _, _ = select.select([port.fileno()], [], [], self._ticks.slice())
                data: bytes = port.read(max(1, port.in_waiting)) if ready else b""
            except (serial.SerialException, OSError) as exc:
                # pyserial reports an unplugged USB device as "device reports
                # readiness to read but returned no data", a dead pty as EIO.
                log.warning("GPS serial port %s lost: %s", self.device, exc)
                self._outage_logged = True
                for fix in assembler.flush():
                    yield fix
                return
            now = time.monotonic()
            fixes: list[Fix] = []
            if data:
                last_data = now
                lines = (buf + data).split(b"\n")
                buf = lines.pop()
                if len(buf) > _MAX_LINE:
                    buf = b""
                for line in lines:
                    fixes.extend(assembler.feed(line.decode("ascii", errors="replace")))
                if assembler.parsed > self.sentences:
                    last_nmea, self.connected = now, True
                self.sentences, self.unreadable = assembler.parsed, assembler.rejected
            elif now - last_data >= self.read_timeout:
                # The receiver went quiet mid-epoch: emit what we have rather
                # than hold it until the next sentence (read_timeout's job).
                fixes.extend(assembler.flush())
            if self.connected and now - last_nmea > self.quiet_s:
                self.connected = False
            for fix in fixes:
                yield fix
                self._ticks.restart()
                if stop.is_set():
                    return
            if self._ticks.due():
                yield None
