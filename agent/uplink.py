"""The uplink: buffered fixes to the server, live first, inside the server's limits.

Every request is built fresh from the buffer, newest first, as large as the
server allows: the newest fix is always at the head, so the live map is
current the moment the network returns, and the rest of the batch drains the
backlog from the newest back to the oldest (the recent past fills in first;
the oldest, which the buffer cap thins first anyway, comes last).

Planning: the next request goes no sooner than ``max(upload.interval_s,
60 / requests_per_minute * (1 + safety_margin))`` after the last answer, and
never sooner than ``RateLimit-Reset / RateLimit-Remaining`` allows. At the
seed's 10 requests/min that is one request every 6.6 s carrying everything
new plus up to ``max_batch`` of backlog, and no 429 in steady state.

Failures (connection errors, 429, 5xx): tenacity, full-jitter exponential
backoff (``backoff_base_s``, capped at ``backoff_max_s``), never shorter than
the planned interval, and at least ``Retry-After`` when the server sends one.
The next allowed attempt is persisted in the buffer's meta table, so a restart
loop cannot hammer the server. 401/403: stop, state ``auth_error``, keep
buffering, retry every ``auth_retry_s`` or as soon as the token file changes.
413: halve the batch (or use the server's ``max_batch``), grow back slowly.
422/415: first retry without gzip; then bisect the batch, and quarantine a
single fix the server still can't read (kept on disk, logged, re-queued by the
next agent version), unless single fixes keep failing, which means the server
not the fixes is at fault: then no more bisecting, whole batches with backoff
until the server reads one again. Per-fix rejections: those fixes are dropped, with
the reason logged. Only an answer from the server removes a fix.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import httpx
from tenacity import RetryCallState, Retrying, retry_if_exception_type, wait_random_exponential

from agent import __version__
from agent.buffer import Buffer
from agent.fix import Fix
from agent.planner import Planner, WaitRetryAfter
from agent.protocol import PATH, Answer, encode_batch, parse_answer
from agent.settings import ServerSettings, UploadSettings

log = logging.getLogger(__name__)

POLL_S = 0.5  # how often an empty buffer is looked at again
DEADLINE_KEY = "next_attempt_at"
_SINGLE_UNREADABLE_LIMIT = 3


class Transient(Exception):
    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Stopped(Exception):
    pass


def read_token(server: ServerSettings) -> tuple[str | None, str | None]:
    """(token, None) or (None, problem). Re-read each time so rotation needs no restart."""
    if server.token:
        return server.token, None
    if server.token_file is None:
        return None, "server.token or server.token_file: no device token configured"
    try:
        token = server.token_file.read_text(encoding="utf-8").strip()
    except OSError as exc:
        return None, f"server.token_file: can't read {server.token_file}: {exc.strerror}"
    if not token:
        return None, f"server.token_file: {server.token_file} is empty"
    return token, None


def _file_stamp(path: Path | None) -> tuple[float, int] | None:
    try:
        st = path.stat() if path else None
    except OSError:
        return None
    return (st.st_mtime, st.st_size) if st else None


@dataclass(frozen=True, slots=True)
class UplinkStatus:
    phase: str = "starting"  # starting, ok, buffering, auth_error, config_error
    last_upload: str | None = None  # wall clock ISO of the last 200
    last_error: str | None = None
    batch_size: int = 0
    interval_s: float = 0.0
    next_attempt_in_s: float = 0.0
    requests: int = 0


def _fingerprint(token: str) -> str:
    """Enough to tell tokens apart across a restart without storing the token."""
    return hashlib.sha256(token.encode()).hexdigest()[:16]


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


class Uplink:
    def __init__(
        self,
        server: ServerSettings,
        cfg: UploadSettings,
        buffer: Buffer,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.server = server
        self.cfg = cfg
        self.buffer = buffer
        self.planner = Planner(cfg)
        self.url = server.url.rstrip("/") + PATH
        self.gzip = cfg.gzip
        self.stop = threading.Event()
        self._lock = threading.Lock()
        # What the last run knew still holds until this run learns better: a unit
        # that was refused (401) or cut off before the restart says so from the start.
        last_state = buffer.get_meta("state")
        self._status = UplinkStatus(
            phase=last_state if last_state in ("buffering", "auth_error") else "starting",
            last_upload=buffer.get_meta("last_upload"),
            last_error=buffer.get_meta("last_error"),
        )
        self._pending: list[list[Fix]] = []  # 422 bisection halves, sent before live
        self._unreadable_singles = 0
        self._from_pending = False
        self._auth_failed = False
        self._auth_until = 0.0  # monotonic
        self._token = ""
        self._next_at = 0.0  # monotonic: no request before this (rate plan)
        self._token_stamp = _file_stamp(server.token_file)
        timeout = httpx.Timeout(cfg.read_timeout_s, connect=cfg.connect_timeout_s)
        self.client = httpx.Client(
            timeout=timeout,
            transport=transport,
            headers={"User-Agent": f"bustracker-agent/{__version__}"},
        )
        self.retrying = Retrying(
            retry=retry_if_exception_type(Transient),
            wait=WaitRetryAfter(
                wait_random_exponential(multiplier=cfg.backoff_base_s, max=cfg.backoff_max_s),
                floor=self.planner.interval,
            ),
            sleep=self._sleep,
            before_sleep=self._before_sleep,
            reraise=True,
        )

    # -- status ----------------------------------------------------------------

    @property
    def status(self) -> UplinkStatus:
        with self._lock:
            return self._status

    def _set(self, **changes: object) -> None:
        with self._lock:
            self._status = replace(self._status, **changes)  # type: ignore[arg-type]

    def _error(self, phase: str, message: str) -> None:
        repeated = self._status.last_error == message and self._status.phase == phase
        # An outage repeats the same error for hours: log it once, not per attempt.
        log.log(logging.DEBUG if repeated else logging.WARNING, "upload: %s", message)
        self._set(phase=phase, last_error=message)
        if not repeated:
            self.buffer.set_meta(last_error=message, state=phase)

    # -- loop ------------------------------------------------------------------

    def run(self, stop: threading.Event | None = None) -> None:
        """Upload until ``stop`` is set. The first request waits out the persisted deadline."""
        if stop is not None:
            self.stop = stop
        delay = self.buffer.deadline_delay(DEADLINE_KEY)
        refused = self.buffer.get_meta("refused_token")
        token, _ = read_token(self.server)
        if refused and token and refused != _fingerprint(token):
            delay = 0.0  # the refused token was replaced: no reason to wait for it
        if delay > 0:
            log.info("upload: waiting %.1f s (deadline persisted before the restart)", delay)
        self._next_at = time.monotonic() + delay
        try:
            while not self._wait(delay):
                delay = self.cycle()
        finally:
            self.client.close()

    def _wait(self, delay: float) -> bool:
        """Wait up to ``delay``; True when stopping. Wakes early on a new token file."""
        self._set(next_attempt_in_s=round(delay, 1))
        end = time.monotonic() + delay
        while (left := end - time.monotonic()) > 0:
            if self.stop.wait(min(left, 1.0)):
                return True
            if self._token_changed():
                self._auth_until = 0.0
                return False
        return self.stop.is_set()

    def _token_changed(self) -> bool:
        stamp = _file_stamp(self.server.token_file)
        changed, self._token_stamp = stamp != self._token_stamp, stamp
        return changed

    def _sleep(self, seconds: float) -> None:
        if self._wait(seconds):
            raise Stopped

    def _before_sleep(self, rs: RetryCallState) -> None:
        wait = rs.upcoming_sleep
        self.buffer.save_deadline(DEADLINE_KEY, wait)
        self._set(next_attempt_in_s=round(wait, 1))

    def cycle(self) -> float:
        """One upload round (with its retries); returns how long to wait before the next."""
        token, problem = read_token(self.server)
        if token is None:
            assert problem is not None
            self._error("config_error", problem)
            return 5.0
        now = time.monotonic()
        if now < max(self._auth_until, self._next_at):
            return max(self._auth_until, self._next_at) - now
        if self.buffer.count() == 0 and not self._pending:
            # Nothing to send costs the server nothing: look again soon, so the
            # first fix after a quiet spell goes out at once.
            return min(POLL_S, self.planner.interval())
        try:
            sent = self.retrying(self._attempt, token)
        except Stopped:
            return 0.0
        if self._auth_failed:
            self._auth_until = time.monotonic() + self.cfg.auth_retry_s
            self.buffer.save_deadline(DEADLINE_KEY, self.cfg.auth_retry_s)
            return self.cfg.auth_retry_s
        delay = self.planner.next_delay()
        if sent:
            self._next_at = time.monotonic() + delay
            self.buffer.save_deadline(DEADLINE_KEY, delay)
        return delay

    # -- one request ---------------------------------------------------------------

    def _attempt(self, token: str) -> int:
        if self.stop.is_set():
            raise Stopped
        self._token = token
        self._auth_failed = False
        size = self.planner.batch_size()
        # A bisection half stays at the head of _pending until the server has read it.
        self._from_pending = bool(self._pending)
        batch = self._pending[0] if self._pending else self.buffer.newest(size)
        self._set(batch_size=size, interval_s=round(self.planner.interval(), 2))
        if not batch:
            return 0
        backlog = max(self.buffer.count() - len(batch), 0)
        body = encode_batch(batch, __version__, backlog, compress=self.gzip)
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        if self.gzip:
            headers["Content-Encoding"] = "gzip"
        self._set(requests=self._status.requests + 1)
        try:
            resp = self.client.post(self.url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            self._error("buffering", f"{type(exc).__name__}: {exc or 'connection failed'}")
            raise Transient(str(exc)) from exc
        answer = parse_answer(
            resp.status_code, resp.headers, resp.content, datetime.now(UTC), sent=len(batch)
        )
        self.planner.observe(answer.limits)
        return self._handle(answer, batch)

    def _handle(self, answer: Answer, batch: list[Fix]) -> int:
        if answer.kind == "ok":
            return self._accepted(answer, batch)
        message = f"HTTP {answer.status}: {answer.error}"
        if answer.kind == "auth":
            self._auth_failed = True
            self.buffer.set_meta(refused_token=_fingerprint(self._token))
            self._error("auth_error", message + " (device token refused; still buffering)")
            return 0
        if answer.kind == "too_large":
            size = self.planner.shrink(len(batch), answer.limits.max_batch)
            self._error("buffering", f"{message}; batch size now {size}")
            raise Transient(message, retry_after=self.planner.interval())
        if answer.kind == "unreadable":
            self._unreadable(batch, message)
            raise Transient(message, retry_after=self.planner.interval())
        self._error("buffering", message)
        raise Transient(message, retry_after=answer.retry_after_s)

    def _accepted(self, answer: Answer, batch: list[Fix]) -> int:
        for r in answer.rejected:
            log.warning("upload: server rejected fix t=%s: %s", batch[r.index].t, r.reason)
        total = answer.accepted + answer.duplicates + len(answer.rejected)
        if total != len(batch):
            log.warning(
                "upload: answer counts %d fixes for a batch of %d; trusting the 200",
                total,
                len(batch),
            )
        # A 200 means the whole batch is durable on the server (or rejected with a
        # reason): every fix of it leaves the buffer.
        self.buffer.remove(f.t for f in batch)
        if self._from_pending:
            self._pending.pop(0)
        self.planner.success(len(batch))
        self._unreadable_singles = 0
        stamp = _now_iso()
        self._set(phase="ok", last_upload=stamp)
        self.buffer.set_meta(last_upload=stamp, state="ok", refused_token=None)
        return len(batch)

    def _unreadable(self, batch: list[Fix], message: str) -> None:
        if self.gzip:
            # The server (or a proxy) may not take gzip bodies. The retry is rebuilt
            # from the buffer like any other, so it still leads with the newest fix.
            self.gzip = False
            self._error("buffering", f"{message}; retrying without gzip")
            return
        if self._from_pending:
            self._pending.pop(0)
        if len(batch) == 1:
            self._unreadable_singles += 1
        if self._unreadable_singles > _SINGLE_UNREADABLE_LIMIT:
            # Single fixes keep failing: the server, not our fixes, is at fault. Stop
            # bisecting until it reads a batch again, so the halves of old fixes don't
            # hold back the live position, and let the retry back off.
            self._pending.clear()
            self._error("buffering", f"{message}; server can't read any batch, backing off")
            return
        if len(batch) > 1:
            half = len(batch) // 2
            self._pending[:0] = [batch[:half], batch[half:]]
            self._error("buffering", f"{message}; splitting the batch of {len(batch)}")
            return
        self.buffer.quarantine(batch, message)
        self.buffer.set_meta(quarantine_version=__version__)
        log.error(
            "upload: quarantined fix t=%s after %s (kept in the buffer file)", batch[0].t, message
        )
