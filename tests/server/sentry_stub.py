"""A loopback HTTP server standing in for Sentry's ingest: it keeps every envelope the SDK sends."""

from __future__ import annotations

import gzip
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any


class SentryStub(HTTPServer):
    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Ingest)
        self.received: list[tuple[str, bytes]] = []

    @property
    def dsn(self) -> str:
        return f"http://publickey@127.0.0.1:{self.server_port}/42"

    def events(self) -> list[dict[str, Any]]:
        """The envelope items that are error events (they carry an exception)."""
        return [
            json.loads(line)
            for _, body in self.received
            for line in body.splitlines()
            if line.startswith(b"{") and b'"exception"' in line
        ]

    def wait_for_events(self, count: int, timeout: float = 30) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while len(self.events()) < count:
            assert time.monotonic() < deadline, f"no {count} event(s) reached the DSN"
            time.sleep(0.05)
        return self.events()


class _Ingest(BaseHTTPRequestHandler):
    server: SentryStub

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        self.server.received.append((self.path, body))
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: Any) -> None:
        pass


@contextmanager
def sentry_stub() -> Iterator[SentryStub]:
    stub = SentryStub()
    threading.Thread(target=stub.serve_forever, daemon=True).start()
    try:
        yield stub
    finally:
        stub.shutdown()
        stub.server_close()
