"""The agent's main loop: a capture thread, an uplink thread, and a status heartbeat.

capture thread   source -> pipeline -> buffer (a fix is captured once committed)
uplink thread    buffer -> server (agent.uplink)
main thread      every ``status.interval_s``: one ``StatusSnapshot`` of what the
                 runner knows (state, GPS, uplink, counts, the health check), handed
                 to every status sink (agent/status/: the status file, systemd).
                 The health check is the runner's: the capture thread alive and
                 still looping, the buffer writable (the last insert committed and
                 the file still open for writing), the uplink thread alive;
                 systemd's watchdog is fed only while it passes.

States, first match wins: config_error (no usable token), auth_error (token
refused), starting (no fix yet, just started), no_fix (no valid fix for
``status.no_fix_after_s``), buffering (the last upload failed), draining (more
backlog than one request carries), ok. ``stopped`` is published on a clean exit.
The rules are in agent/status/snapshot.py.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from types import MappingProxyType

import httpx

from agent import __version__
from agent.buffer import Buffer
from agent.fix import Fix
from agent.pipeline import Context, Pipeline
from agent.settings import GpsSettings, Settings
from agent.sources import GpsdSource, GpsSource, ReplaySource, SerialSource
from agent.status import Fanout, State, StatusSink, StatusSnapshot, default_sinks
from agent.status.snapshot import gps_state, overall_state, uplink_state
from agent.uplink import Uplink

log = logging.getLogger(__name__)

# Verdicts that still prove the GPS has a fix (the fix was fine, just not needed).
_VALID_DROPS = frozenset({"stationary", "thinned"})
_STA_UNSYNC = 0x0040
_TIME_ERROR = 5


def make_source(gps: GpsSettings) -> GpsSource:
    if gps.source == "serial":
        return SerialSource(
            gps.device,
            gps.baud,
            read_timeout=gps.read_timeout_s,
            reopen_delay=gps.reconnect_delay_s,
            idle_s=gps.idle_s,
        )
    if gps.source == "replay":
        assert gps.path is not None  # settings insist on it
        return ReplaySource(gps.path, speed=gps.speed, loop=gps.loop, idle_s=gps.idle_s)
    return GpsdSource(
        gps.host,
        gps.port,
        connect_timeout=gps.connect_timeout_s,
        read_timeout=gps.read_timeout_s,
        reconnect_delay=gps.reconnect_delay_s,
        idle_s=gps.idle_s,
    )


class _Timex(ctypes.Structure):
    # The head of struct timex; the tail is padding the kernel may write into.
    _fields_ = [
        ("modes", ctypes.c_uint),
        ("offset", ctypes.c_long),
        ("freq", ctypes.c_long),
        ("maxerror", ctypes.c_long),
        ("esterror", ctypes.c_long),
        ("status", ctypes.c_int),
        ("_rest", ctypes.c_byte * 256),
    ]


def kernel_clock_synced() -> bool:
    """What ``timedatectl`` calls "System clock synchronized": chrony or timesyncd
    clear STA_UNSYNC once the clock is disciplined. Unknown counts as unsynced."""
    try:
        # dlopen(NULL): libc is already in the process, and find_library("c") would
        # run `ldconfig -p` in a child process at every check.
        libc = ctypes.CDLL(None, use_errno=True)
        tx = _Timex()
        state = libc.adjtimex(ctypes.byref(tx))
    except (OSError, AttributeError):
        return False
    return bool(state not in (-1, _TIME_ERROR) and not tx.status & _STA_UNSYNC)


class ClockCheck:
    """Whether the system clock may veto GPS times; re-asked once a minute."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self._value = False
        self._at = -1e9

    def __call__(self) -> bool:
        if self.mode != "auto":
            return self.mode == "synced"
        if time.monotonic() - self._at > 60.0:
            self._value, self._at = kernel_clock_synced(), time.monotonic()
        return self._value


class Runner:
    def __init__(
        self,
        settings: Settings,
        source: GpsSource | None = None,
        transport: httpx.BaseTransport | None = None,
        sinks: Sequence[StatusSink] | None = None,
    ) -> None:
        self.settings = settings
        # Where each tick's snapshot goes; by default the status file and (under
        # systemd) sd_notify. Read from the environment now, as systemd set it.
        self.sinks = Fanout(default_sinks(settings) if sinks is None else sinks)
        self.source = source or make_source(settings.gps)
        self.transport = transport
        self.stop = threading.Event()
        self.clock = ClockCheck(settings.filter.system_clock)
        self.pipeline = Pipeline(settings.filter)
        self.started = time.monotonic()
        self._lock = threading.Lock()
        self.beat = time.monotonic()  # capture loop progress
        self.last_valid: float | None = None  # monotonic time of the last valid fix
        self.last_fix: Fix | None = None
        self.captured = 0
        self.capture_done = False  # a replay that reached its end
        self.write_ok = True  # the capture thread's last buffer insert committed
        # A source yields at least every idle_s; this much silence means it is wedged.
        self.stale_after_s = max(10.0, 5 * settings.gps.idle_s)
        self.buffer = self.open_buffer()  # main thread's view
        if self.buffer.get_meta("quarantine_version") not in (None, __version__):
            n = self.buffer.requeue_quarantine()
            # This version has now had its chance at them: a restart doesn't requeue again.
            self.buffer.set_meta(quarantine_version=__version__)
            log.info("new agent version: %d quarantined fixes queued again", n)
        self.last_fix = self.buffer.last()
        self.uplink = Uplink(settings.server, settings.upload, self.open_buffer(), transport)
        self._threads: list[threading.Thread] = []

    def open_buffer(self) -> Buffer:
        """A connection for one thread; every one of them opened the same way."""
        bs = self.settings.buffer
        return Buffer(bs.path, bs.max_mb, bs.synchronous)

    # -- capture ---------------------------------------------------------------------

    def _capture(self) -> None:
        buffer = self.open_buffer()
        try:
            while not self.stop.is_set():
                try:
                    for item in self.source.fixes(self.stop):
                        self.beat = time.monotonic()
                        if item is not None:
                            self._take(item, buffer)
                    if not self.stop.is_set():
                        log.info("gps: input ended")
                        self.capture_done = True
                    return
                except Exception:  # one failure (source or disk) must not end capture
                    log.exception(
                        "capture failed; starting over in %.1f s",
                        self.settings.gps.reconnect_delay_s,
                    )
                    self.stop.wait(self.settings.gps.reconnect_delay_s)
        finally:
            buffer.close()

    def _take(self, fix: Fix, buffer: Buffer) -> None:
        ctx = Context(now=datetime.now(UTC), clock_synced=self.clock())
        verdict = self.pipeline.feed(fix, ctx)
        if verdict.fix is not None:
            try:
                buffer.add(verdict.fix)  # captured once this returns: the commit is done
            except Exception:
                # The source keeps yielding, so the loop looks alive: say so here.
                self.write_ok = False
                raise
            self.write_ok = True
            with self._lock:
                self.captured += 1
                self.last_fix = verdict.fix
        if verdict.fix is not None or verdict.reason in _VALID_DROPS:
            self.last_valid = time.monotonic()
        elif verdict.reason not in ("no_fix", "repeat"):
            log.info("gps: dropped fix t=%s: %s", fix.t, verdict.reason)

    # -- state --------------------------------------------------------------------------

    def device_present(self) -> bool:
        # Whether the source reaches the receiver: gpsd has one open, NMEA comes on
        # the serial port, the replay file is being read (D82).
        return self.source.connected

    def snapshot(self, *, stopping: bool = False, final: bool = False) -> StatusSnapshot:
        """What the runner knows now, once for every sink. ``final``: state ``stopped``."""
        up = self.uplink.status
        with self._lock:
            last_fix, captured = self.last_fix, self.captured
        no_fix_after = self.settings.status.no_fix_after_s
        now = time.monotonic()
        fix_recent = self.last_valid is not None and now - self.last_valid <= no_fix_after
        backlog = self.buffer.count()
        gps = gps_state(fix_recent=fix_recent, device_present=self.device_present())
        uplink = uplink_state(up.phase, backlog, up.batch_size)
        starting_up = self.last_valid is None and now - self.started < no_fix_after
        state: State = "stopped" if final else overall_state(gps, uplink, starting_up=starting_up)
        quarantined = self.buffer.quarantined()
        healthy = self.healthy()  # last: the systemd sink acts on it right away
        return StatusSnapshot(
            at=datetime.now(UTC),
            state=state,
            gps=gps,
            uplink=uplink,
            healthy=healthy,
            stopping=stopping or final,
            backlog=backlog,
            captured=captured,
            dropped=MappingProxyType(dict(self.pipeline.dropped)),
            quarantined=quarantined,
            last_fix=last_fix,
            last_upload=up.last_upload,
            last_error=up.last_error,
            batch_size=up.batch_size,
            upload_interval_s=up.interval_s,
            next_attempt_in_s=up.next_attempt_in_s,
            requests=up.requests,
        )

    def _last_words(self, *, stopping: bool = False, final: bool = False) -> None:
        # The shutdown must go on (threads joined, buffer closed) even when the
        # snapshot can't be taken, e.g. after the buffer itself failed.
        try:
            snap = self.snapshot(stopping=stopping, final=final)
        except Exception:
            log.exception("can't take the status snapshot at shutdown")
            return
        self.sinks.publish(snap)

    def healthy(self) -> bool:
        if not self._threads:
            return False  # not running yet
        capture, uplink = self._threads
        stale = time.monotonic() - self.beat > self.stale_after_s
        capture_ok = self.capture_done or (capture.is_alive() and not stale)
        return capture_ok and self.buffer_writable() and uplink.is_alive()

    def buffer_writable(self) -> bool:
        """The last insert committed, and the file can still be written (a card the
        kernel remounted read-only after I/O errors fails this before any insert)."""
        path = self.settings.buffer.path
        return self.write_ok and (not path.exists() or os.access(path, os.W_OK))

    # -- main loop ------------------------------------------------------------------------

    def run(self) -> int:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, lambda *_: self.stop.set())
        self._threads = [
            threading.Thread(target=self._capture, name="capture", daemon=True),
            threading.Thread(target=self.uplink.run, args=(self.stop,), name="uplink", daemon=True),
        ]
        for th in self._threads:
            th.start()
        log.info(
            "agent %s running: gps=%s server=%s buffer=%s",
            __version__,
            self.settings.gps.source,
            self.settings.server.url,
            self.settings.buffer.path,
        )
        try:
            while True:
                self.sinks.publish(self.snapshot())
                if self.stop.wait(self.settings.status.interval_s):
                    break
        finally:
            self.stop.set()
            self._last_words(stopping=True)  # systemd: STOPPING=1 now
            for th in self._threads:
                th.join(timeout=15)
            self._last_words(final=True)
            self.sinks.close()
            self.buffer.close()
            log.info("agent stopped")
        return 0
