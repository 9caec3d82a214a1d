"""Fixes from a recorded NMEA file, paced like the original drive.

Used for demos (one simulated bus per file, looping forever) and for
reproducing a field log on a desk. Pacing follows the GPS times in the file,
divided by ``speed``; the schedule is kept from the first fix rather than
from each wake-up, so a long replay does not drift. With ``loop`` each pass is
shifted forward by the length of the log plus one epoch, so fix times keep
increasing as a live receiver's would (the server dedupes on time; repeating
old times would make every pass after the first a pile of duplicates).
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

from agent.fix import Fix
from agent.nmea import EpochAssembler

log = logging.getLogger(__name__)

_DEFAULT_STEP = timedelta(seconds=1)


class ReplaySource:
    """Play ``path`` through the epoch assembler; speed 0 means no pauses."""

    def __init__(
        self,
        path: str | Path,
        speed: float = 1.0,
        loop: bool = False,
        idle_s: float = 1.0,
    ) -> None:
        if speed < 0:
            raise ValueError("speed must be >= 0")
        self.path = Path(path)
        self.speed = speed
        self.loop = loop
        self.idle_s = idle_s
        self.connected = False
        self.last_error: str | None = None  # a missing file raises instead

    def fixes(self, stop: threading.Event) -> Iterator[Fix | None]:
        offset = timedelta(0)
        due = time.monotonic()  # when the previous fix was (or will be) played
        previous: Fix | None = None
        self.connected = True
        try:
            while not stop.is_set():
                earliest = latest = last = None
                step = _DEFAULT_STEP  # the log's epoch interval, learned as it plays
                for fix in self._read():
                    if last is not None and fix.t > last:
                        step = fix.t - last
                    last = fix.t
                    earliest = fix.t if earliest is None else min(earliest, fix.t)
                    latest = fix.t if latest is None else max(latest, fix.t)
                    if offset:
                        fix = dataclasses.replace(fix, t=fix.t + offset)
                    if self.speed > 0 and previous is not None:
                        # A step back in time (two logs glued together) plays at once.
                        gap = max((fix.t - previous.t).total_seconds(), 0.0)
                        due += gap / self.speed
                        yield from self._sleep_until(due, stop)
                    elif previous is None:
                        due = time.monotonic()
                    if stop.is_set():
                        return
                    previous = fix
                    yield fix
                    if stop.is_set():
                        return
                if not self.loop:
                    return
                if earliest is None or latest is None:
                    log.warning("replay file %s holds no fix; nothing to loop", self.path)
                    return
                offset += (latest - earliest) + step
        finally:
            self.connected = False

    def _read(self) -> Iterator[Fix]:
        assembler = EpochAssembler()
        with self.path.open(encoding="ascii", errors="replace") as lines:
            for line in lines:
                yield from assembler.feed(line)
        yield from assembler.flush()
        if assembler.rejected:
            log.debug("replay %s: %d lines rejected", self.path, assembler.rejected)

    def _sleep_until(self, due: float, stop: threading.Event) -> Iterator[None]:
        """Wait for the monotonic instant ``due``, yielding None every ``idle_s``."""
        while True:
            remaining = due - time.monotonic()
            if remaining <= 0 or stop.wait(min(remaining, self.idle_s)):
                return
            if due - time.monotonic() > 0:
                yield None
