"""Fixes from gpsd, read as a stream of JSON reports over its socket.

We speak the protocol ourselves instead of using gpsd-py3: that library polls
the *last* fix (which may be stale), keeps one global socket, never reconnects
and reads without a timeout. Here a ``?WATCH`` stream delivers each TPV as it
happens, every socket call is bounded, and a dead or hung gpsd is replaced by
a fresh connection, forever.

One fix per epoch: gpsd can report an epoch more than once (a 2D TPV, then a
3D one with the same ``time`` once the GGA altitude arrives, or the same TPV
again after a client command). The first report is emitted at once and later
ones with the same time are dropped: waiting to see whether a better one comes
would delay every live fix, and the 2D report already has the position.
"""

from __future__ import annotations

import enum
import errno
import json
import logging
import math
import os
import select
import socket
import threading
import time
from collections import deque
from collections.abc import Generator, Iterator
from datetime import UTC, datetime
from typing import Any, Literal

from agent.fix import Fix
from agent.sources.ticks import IdleTicks

log = logging.getLogger(__name__)

_WATCH = b'?WATCH={"enable":true,"json":true}\n'
# Any command gets an answer from a live gpsd; VERSION is the cheapest and
# does not replay old TPVs the way ?POLL would.
_PROBE = b"?VERSION;\n"
_MAX_LINE = 1 << 20  # gpsd's largest reports (SKY with many satellites) are a few kB
_SKY_MAX_AGE = 5.0  # seconds (monotonic) a SKY report may lend hdop/sats to a fix
_RECENT_TIMES = 16
# Longest single wait between looks at the stop event: a threading.Event has
# no file descriptor to select on, so long timeouts are cut into slices.


class _Skip(enum.Enum):
    """A report that tells the caller nothing (not even "no fix")."""

    SKIP = enum.auto()


class GpsdSource:
    """Streaming gpsd client; see the module docstring for the rules."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 2947,
        connect_timeout: float = 5.0,
        read_timeout: float = 2.0,
        reconnect_delay: float = 1.0,
        idle_s: float = 1.0,
    ) -> None:
        self.host, self.port = host, port
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.reconnect_delay = reconnect_delay
        self.idle_s = idle_s
        # Answering: gpsd spoke on this connection. Connected: it also has a receiver
        # open (its DEVICES and DEVICE reports): gpsd answers clients without one.
        self.answering = False
        self.connected = False
        self.last_error: str | None = None
        self._receivers: set[str] = set()
        self._recent: deque[datetime] = deque(maxlen=_RECENT_TIMES)
        self._sky: tuple[float | None, int | None, float] | None = None  # hdop, sats, arrived
        self._outage_logged = False
        self._ticks = IdleTicks(idle_s)

    def fixes(self, stop: threading.Event) -> Iterator[Fix | None]:
        self._ticks.restart()
        while not stop.is_set():
            sock = yield from self._connect(stop)
            if sock is None:
                continue
            try:
                yield from self._session(sock, stop)
            finally:
                self.answering = self.connected = False
                self._receivers.clear()
                sock.close()
            # Also after a lost session: a gpsd that accepts and hangs up at once
            # (too many clients, shutting down) must not become a busy loop.
            yield from self._ticks.pause(stop, self.reconnect_delay)

    def _session(self, sock: socket.socket, stop: threading.Event) -> Iterator[Fix | None]:
        """Read one connection until it dies or ``stop`` is set."""
        buf = b""
        last_data = time.monotonic()
        probed = False
        while not stop.is_set():
            try:
                sock.settimeout(self._ticks.slice(self.read_timeout))
                data = sock.recv(65536)
            except TimeoutError:
                now = time.monotonic()
                if now - last_data >= self.read_timeout:
                    if probed:
                        self._lost("stopped answering; reconnecting")
                        return
                    # Silence is normal when gpsd has no device; a hung gpsd is
                    # told apart by not answering a command.
                    try:
                        sock.sendall(_PROBE)
                    except OSError as exc:
                        self._lost(f"connection failed: {exc}")
                        return
                    probed, last_data = True, now
                data = b""
            except OSError as exc:
                self._lost(f"connection failed: {exc}")
                return
            else:
                if not data:
                    self._lost("closed the connection")
                    return
                last_data, probed = time.monotonic(), False
                if not self.answering:
                    self._up()
            lines = (buf + data).split(b"\n")
            buf = lines.pop()
            if len(buf) > _MAX_LINE:
                buf = b""  # not gpsd talking; resynchronise at the next newline
            for line in lines:
                item = self._report(line)
                if item is _Skip.SKIP:
                    continue
                yield item
                self._ticks.restart()
                if stop.is_set():
                    return
            if self._ticks.due():
                yield None

    @property
    def receivers(self) -> list[str]:
        """The receivers gpsd has open, as its DEVICES and DEVICE reports said."""
        return sorted(self._receivers)

    @property
    def _addr(self) -> str:
        return f"{self.host}:{self.port}"

    # -- one log line per outage, however many retries it takes ----------------

    def _up(self) -> None:
        # Answering means gpsd has spoken (it greets with VERSION at once), not
        # merely that the kernel accepted the TCP connection: a dying or hung
        # gpsd can still accept.
        self.answering = True
        self._sky = None
        what = "is back" if self._outage_logged else "connected"
        log.info("gpsd at %s %s", self._addr, what)
        self._outage_logged = False

    def _lost(self, why: str) -> None:
        self.last_error = why
        if self._outage_logged:
            log.debug("gpsd at %s still unavailable: %s", self._addr, why)
        else:
            log.warning(
                "gpsd at %s %s; retrying every %.1f s", self._addr, why, self.reconnect_delay
            )
        self._outage_logged = True

    # -- connection ----------------------------------------------------------

    def _connect(self, stop: threading.Event) -> Generator[None, None, socket.socket | None]:
        """One attempt; on failure wait ``reconnect_delay``. Yields None while waiting."""
        try:
            return (yield from self._open(stop))
        except OSError as exc:
            self._lost(f"unavailable ({exc})")
            yield from self._ticks.pause(stop, self.reconnect_delay)
            return None

    def _open(self, stop: threading.Event) -> Generator[None, None, socket.socket | None]:
        # A non-blocking connect lets us keep yielding None (watchdog) during
        # a connect_timeout longer than idle_s.
        deadline = time.monotonic() + self.connect_timeout
        family, kind, proto, _, addr = socket.getaddrinfo(
            self.host, self.port, type=socket.SOCK_STREAM
        )[0]
        sock = socket.socket(family, kind, proto)
        try:
            sock.setblocking(False)
            err = sock.connect_ex(addr)
            while err in (errno.EINPROGRESS, errno.EALREADY, errno.EWOULDBLOCK):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"connect timed out after {self.connect_timeout} s")
                _, writable, _ = select.select([], [sock], [], self._ticks.slice(remaining))
                if writable:
                    err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    break
                if stop.is_set():
                    sock.close()
                    return None
                if self._ticks.due():
                    yield None
            if err:
                raise OSError(err, os.strerror(err))
            sock.settimeout(self.read_timeout)
            sock.sendall(_WATCH)
        except BaseException:
            sock.close()
            raise
        return sock

    # -- reports ------------------------------------------------------------

    def _report(self, line: bytes) -> Fix | Literal[_Skip.SKIP] | None:
        """A Fix, None (gpsd says: no fix), or _SKIP (nothing to tell the caller)."""
        try:
            obj = json.loads(line)
        except ValueError:
            log.debug("ignoring non-JSON line from gpsd: %r", line[:200])
            return _Skip.SKIP
        if not isinstance(obj, dict):
            return _Skip.SKIP
        kind = obj.get("class")
        if kind == "TPV":
            return self._tpv(obj)
        if kind == "SKY":
            self._take_sky(obj)
        elif kind == "DEVICES":
            devices = obj.get("devices")
            self._receivers.clear()
            for device in devices if isinstance(devices, list) else []:
                self._take_device(device)
            self._device_change()
        elif kind == "DEVICE":
            self._take_device(obj)
            self._device_change()
        elif kind == "ERROR":
            log.warning("gpsd error: %s", obj.get("message"))
        return _Skip.SKIP

    def _take_device(self, device: Any) -> None:
        # Active while "activated" holds its time; inactive ones have none, or 0
        # (gpsd before 3.20 sends 0 for a device being closed).
        if not isinstance(device, dict) or not isinstance(device.get("path"), str):
            return
        if device.get("activated"):
            self._receivers.add(device["path"])
        else:
            self._receivers.discard(device["path"])

    def _device_change(self) -> None:
        self.connected = bool(self._receivers)
        if not self.connected:
            self.last_error = "gpsd answers but has no receiver open"

    def _tpv(self, tpv: dict[str, Any]) -> Fix | Literal[_Skip.SKIP] | None:
        mode = tpv.get("mode")
        lat, lon, stamp = _num(tpv.get("lat")), _num(tpv.get("lon")), tpv.get("time")
        if mode not in (2, 3) or lat is None or lon is None or not isinstance(stamp, str):
            return None
        try:
            t = datetime.fromisoformat(stamp)
        except ValueError:
            log.debug("TPV with unreadable time %r", stamp)
            return None
        # gpsd always writes UTC ("Z"); a bare time is read the same way,
        # never as the Pi's local time.
        t = t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)
        if t in self._recent:
            return _Skip.SKIP
        self._recent.append(t)
        hdop = sats = None
        if self._sky is not None and time.monotonic() - self._sky[2] <= _SKY_MAX_AGE:
            hdop, sats, _ = self._sky
        alt = _num(tpv.get("altMSL"))
        if alt is None:
            alt = _num(tpv.get("alt"))  # gpsd < 3.20 names MSL altitude "alt"
        return Fix(
            t=t,
            lat=lat,
            lon=lon,
            alt=alt if mode == 3 else None,  # a 2D fix's altitude is a held guess
            speed=_num(tpv.get("speed")),
            heading=_num(tpv.get("track")),
            hdop=hdop,
            sats=sats,
            mode=mode,
        )

    def _take_sky(self, sky: dict[str, Any]) -> None:
        # gpsd reports SKY after the TPV of the same epoch, so a fix carries the
        # previous epoch's hdop/sats: a second late, never stale (max age).
        sats = sky.get("uSat")
        satellites = sky.get("satellites")
        if not isinstance(sats, int) and isinstance(satellites, list):
            sats = sum(1 for s in satellites if isinstance(s, dict) and s.get("used") is True)
        self._sky = (
            _num(sky.get("hdop")),
            sats if isinstance(sats, int) else None,
            time.monotonic(),
        )


def _num(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None
