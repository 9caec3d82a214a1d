"""End live streams as soon as the server is asked to stop.

uvicorn's graceful shutdown waits for open connections to finish before it
runs the application's shutdown, and an SSE stream never finishes by itself:
one open rider screen would hold a stopping server forever (or until systemd
kills it). ASGI has no "server is stopping" event, so we chain onto the
SIGINT/SIGTERM handlers the server installed: close every live client, then
let the server's own handler do what it does.
"""

from __future__ import annotations

import asyncio
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextmanager
def on_stop_signal(callback: Callable[[], None]) -> Iterator[None]:
    """Call ``callback`` on the running loop when SIGINT or SIGTERM arrives."""
    # Signal handlers can only be set from the main thread (tests run servers in others).
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    loop = asyncio.get_running_loop()
    previous: dict[int, Callable[[int, FrameType | None], Any]] = {}

    def handler(signum: int, frame: FrameType | None) -> None:
        loop.call_soon_threadsafe(callback)
        previous[signum](signum, frame)

    for sig in _SIGNALS:
        current = signal.getsignal(sig)
        # Only chain onto a handler someone installed: never turn "ignore" or
        # "default" into something else.
        if callable(current):
            previous[sig] = current
            signal.signal(sig, handler)
    try:
        yield
    finally:
        for signum, chained in previous.items():
            if signal.getsignal(signum) is handler:
                signal.signal(signum, chained)
