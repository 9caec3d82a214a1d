"""sd_notify for ``Type=notify`` units, written directly: no library needed.

A datagram to ``$NOTIFY_SOCKET`` (a leading ``@`` is the abstract namespace).
``READY=1`` goes once, after the first snapshot whose health check passed;
``WATCHDOG=1`` every half of ``WATCHDOG_USEC``, and only while the snapshot says
healthy, so a wedged capture thread gets the unit restarted instead of being fed
by a blind timer. ``STATUS=<state>: gps <gps>, link <uplink>, <n> buffered``
rides along with both (``systemctl status`` shows it); without a watchdog it
goes whenever that line changes. ``STOPPING=1``
once the runner says it is stopping, and nothing after it.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Mapping

from agent.status.snapshot import StatusSnapshot

# A hung service manager must not hold the main loop (and the status file) up.
SEND_TIMEOUT_S = 1.0


def socket_address(notify_socket: str) -> str:
    """``$NOTIFY_SOCKET`` as ``socket.sendto`` wants it."""
    return "\0" + notify_socket[1:] if notify_socket.startswith("@") else notify_socket


def status_line(snapshot: StatusSnapshot) -> str:
    """What ``systemctl status`` shows: the state, then what each LED shows and the backlog."""
    return (
        f"{snapshot.state}: gps {snapshot.gps}, link {snapshot.uplink}, {snapshot.backlog} buffered"
    )


def watchdog_interval(environ: Mapping[str, str]) -> float | None:
    """Half of ``WATCHDOG_USEC``, as systemd recommends; None when it isn't ours."""
    usec = environ.get("WATCHDOG_USEC")
    pid = environ.get("WATCHDOG_PID")
    if not usec or not usec.isdigit() or (pid and pid != str(os.getpid())):
        return None
    return int(usec) / 2e6


class SystemdSink:
    def __init__(
        self,
        notify_socket: str,
        watchdog_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.address = socket_address(notify_socket)
        self.watchdog_s = watchdog_s
        self.clock = clock
        self._sock: socket.socket | None = None
        self._ready = False
        self._stopping = False
        self._last_dog: float | None = None
        self._last_status: str | None = None

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] = os.environ) -> SystemdSink | None:
        """The sink systemd asked for, or None when not started by it."""
        addr = environ.get("NOTIFY_SOCKET")
        return cls(addr, watchdog_interval(environ)) if addr else None

    def publish(self, snapshot: StatusSnapshot) -> None:
        if self._stopping:
            return
        if snapshot.stopping:
            self._send("STOPPING=1")
            self._stopping = True
            return
        lines = []
        if snapshot.healthy and not self._ready:
            lines.append("READY=1")
        now = self.clock()
        dog_due = self.watchdog_s is not None and (
            self._last_dog is None or now - self._last_dog >= self.watchdog_s
        )
        if snapshot.healthy and dog_due:
            lines.append("WATCHDOG=1")
        status = f"STATUS={status_line(snapshot)}"
        if not lines and (self.watchdog_s is not None or status == self._last_status):
            return
        self._send("\n".join([*lines, status]))
        # Only what was delivered counts: a READY that failed is sent again next tick.
        self._ready = self._ready or "READY=1" in lines
        if "WATCHDOG=1" in lines:
            self._last_dog = now
        self._last_status = status

    def _send(self, message: str) -> None:
        if self._sock is None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            sock.settimeout(SEND_TIMEOUT_S)
            self._sock = sock
        # sendto, not connect: the address is looked up at each send, nothing goes stale.
        self._sock.sendto(message.encode(), self.address)

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
