"""A real HTTP server on loopback that stands in for the bustracker server.

It speaks protocol v1 like the real one (token check, strict per-fix
validation, dedupe by ``t``, limits advertised in headers and body, a sliding
window rate limit) and can be scripted to answer 401/413/422/429/503, to drop
the connection, or to go away altogether (``stop()``; ``start()`` comes back
on the same port).
"""

from __future__ import annotations

import contextlib
import gzip
import json
import math
import socket
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

PATH = "/v1/telemetry/location"


@dataclass
class Reply:
    """A scripted answer. ``status=None`` means: answer like the real server."""

    status: int | None = None
    body: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    drop: bool = False  # close the connection without answering


@dataclass
class Request:
    at: float  # monotonic
    status: int | None  # None when dropped
    fixes: list[dict[str, Any]]
    headers: dict[str, str]
    backlog: int | None = None


def _valid(fix: Any) -> str | None:
    if not isinstance(fix, dict):
        return "not an object"
    t = fix.get("t")
    if not isinstance(t, str):
        return "t: required string"
    try:
        parsed = datetime.fromisoformat(t.replace("Z", "+00:00"))
    except ValueError:
        return "t: not ISO 8601"
    if parsed.tzinfo is None:
        return "t: needs a timezone"
    for key, lim in (("lat", 90.0), ("lon", 180.0)):
        v = fix.get(key)
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
            return f"{key}: required number"
        if abs(v) > lim:
            return f"{key}: out of range"
    for key in ("alt", "speed", "heading", "hdop", "sats", "mode"):
        v = fix.get(key)
        if v is not None and (isinstance(v, bool) or not isinstance(v, int | float)):
            return f"{key}: must be a number"
    return None


class FakeServer:
    def __init__(
        self,
        token: str = "secret",
        max_batch: int = 500,
        limit: int = 10,
        window_s: float = 60.0,
        enforce_rate: bool = True,
        port: int = 0,
    ) -> None:
        self.token = token
        self.max_batch = max_batch
        self.limit = limit
        self.window_s = window_s
        self.enforce_rate = enforce_rate
        self.port = port
        self.delay_s = 0.0  # pause after storing, before answering (widens kill windows)
        self.lock = threading.RLock()
        self.script: deque[Reply] = deque()
        self.default: Reply | None = None  # answer every request with this, if set
        self.reject_t: dict[str, str] = {}  # t -> reason, rejected per fix
        self.unreadable_t: set[str] = set()  # a body holding one of these gets 422
        self.requests: list[Request] = []
        self.fixes: dict[str, dict[str, Any]] = {}
        self.received: Counter[str] = Counter()
        self._hits: deque[float] = deque()
        self._httpd: ThreadingHTTPServer | None = None
        self._conns: set[socket.socket] = set()

    # -- lifecycle ---------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FakeServer:
        outer = self

        class Handler(_Handler):
            server_ref = outer

        httpd = _QuietServer(("127.0.0.1", self.port), Handler)
        httpd.daemon_threads = True
        self.port = httpd.server_address[1]
        self._httpd = httpd
        threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        return self

    def stop(self) -> None:
        """Go away: stop listening and cut every open (keep-alive) connection."""
        if self._httpd is None:
            return
        self._httpd.shutdown()
        self._httpd.server_close()
        self._httpd = None
        with self.lock:
            conns, self._conns = list(self._conns), set()
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def __enter__(self) -> FakeServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- helpers for tests ---------------------------------------------------------

    def statuses(self) -> list[int | None]:
        with self.lock:
            return [r.status for r in self.requests]

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 30.0) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            with self.lock:
                if predicate():
                    return True
            time.sleep(0.02)
        with self.lock:
            return predicate()

    # -- the protocol -----------------------------------------------------------------

    def _rate_headers(self, now: float) -> tuple[dict[str, str], float | None]:
        while self._hits and self._hits[0] <= now - self.window_s:
            self._hits.popleft()
        over = self.enforce_rate and len(self._hits) >= self.limit
        if not over:
            self._hits.append(now)
        reset = (self._hits[0] + self.window_s - now) if self._hits else self.window_s
        headers = {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(max(self.limit - len(self._hits), 0)),
            "RateLimit-Reset": str(max(math.ceil(reset), 0)),
            "RateLimit-Policy": f"{self.limit};w={self.window_s:g}",
            "X-Max-Batch": str(self.max_batch),
        }
        return headers, (reset if over else None)

    def answer(
        self, headers: dict[str, str], raw: bytes
    ) -> tuple[Reply, list[dict[str, Any]], int | None]:
        """Decide the reply for one request (called with the lock held)."""
        fixes: list[dict[str, Any]] = []
        backlog = None
        try:
            data = gzip.decompress(raw) if headers.get("content-encoding") == "gzip" else raw
            body = json.loads(data)
            fixes = body["fixes"]
            if not isinstance(fixes, list):
                raise TypeError
            backlog = body.get("agent", {}).get("backlog")
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            body = None
        scripted = self.script.popleft() if self.script else self.default
        if scripted is not None and (scripted.drop or scripted.status is not None):
            return scripted, fixes, backlog
        rate, retry = self._rate_headers(time.monotonic())
        if headers.get("authorization") != f"Bearer {self.token}":
            return Reply(401, {"error": "bad token"}, rate), fixes, backlog
        if retry is not None:
            rate["Retry-After"] = str(max(math.ceil(retry), 1))
            return Reply(429, {"error": "rate limited"}, rate), fixes, backlog
        if body is None or any(
            isinstance(f, dict) and f.get("t") in self.unreadable_t for f in fixes
        ):
            return Reply(422, {"error": "body unreadable"}, rate), fixes, backlog
        if len(fixes) > self.max_batch:
            return (
                Reply(413, {"error": "batch too large", "max_batch": self.max_batch}, rate),
                fixes,
                backlog,
            )
        accepted = duplicates = 0
        rejected = []
        for i, fix in enumerate(fixes):
            reason = _valid(fix) or self.reject_t.get(fix["t"])
            if reason:
                rejected.append({"index": i, "reason": reason})
                continue
            self.received[fix["t"]] += 1
            if fix["t"] in self.fixes:
                duplicates += 1
            else:
                self.fixes[fix["t"]] = fix
                accepted += 1
        limits = {
            "requests_per_minute": round(self.limit * 60 / self.window_s),
            "max_batch": self.max_batch,
        }
        return (
            Reply(
                200,
                {
                    "accepted": accepted,
                    "duplicates": duplicates,
                    "rejected": rejected,
                    "limits": limits,
                },
                rate,
            ),
            fixes,
            backlog,
        )


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients killed mid-request (kill -9 tests) are expected here


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like the real deployment
    server_ref: FakeServer

    def setup(self) -> None:
        super().setup()
        with self.server_ref.lock:
            self.server_ref._conns.add(self.request)

    def finish(self) -> None:
        with self.server_ref.lock:
            self.server_ref._conns.discard(self.request)
        super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        fake = self.server_ref
        headers = {k.lower(): v for k, v in self.headers.items()}
        with fake.lock:
            if self.path != PATH:
                reply, fixes, backlog = Reply(404, {"error": "not found"}), [], None
            else:
                reply, fixes, backlog = fake.answer(headers, raw)
            fake.requests.append(
                Request(
                    time.monotonic(), None if reply.drop else reply.status, fixes, headers, backlog
                )
            )
        if fake.delay_s:
            time.sleep(fake.delay_s)
        if reply.drop:
            self.close_connection = True
            self.request.shutdown(socket.SHUT_RDWR)
            return
        payload = json.dumps(reply.body or {}).encode()
        self.send_response(reply.status or 200)
        for k, v in reply.headers.items():
            self.send_header(k, v)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)
