"""``bustracker check-deployment URL``: the seed plan's post-deployment checklist, run.

Each check talks to the deployment the way its users do (HTTP, the WebSocket, a device
report) and yields one :class:`Result`; a check that needs a credential the operator did
not give is skipped, never passed. The report is one line per check; any failure makes the
command exit non-zero, so it can gate a deploy script.
"""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import httpx
from websockets.sync.client import connect

from server.settings import Settings
from server.store import SchemaNotCurrent, StoreUnavailable, open_store

Outcome = Literal["ok", "FAIL", "skip"]
# A burst larger than this without a 429 means the limit is off (or absurdly high).
MAX_BURST = 200


@dataclass(frozen=True, slots=True)
class Result:
    name: str
    outcome: Outcome
    detail: str


@dataclass
class Target:
    """What to check and with which credentials."""

    url: str
    device_token: str | None = None
    username: str | None = None
    password: str | None = None
    ca_file: Path | None = None
    lat: float = 45.0
    lon: float = 9.0
    timeout_s: float = 10.0
    # Filled in by the checks as they go: the sample fix's time, the operator's token.
    sent_at: datetime | None = None
    access_token: str | None = field(default=None, repr=False)

    def tls(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_file) if self.ca_file else None)

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, verify=self.tls(), timeout=self.timeout_s)


class CheckFailed(Exception):
    """The check's reason for failing, shown after FAIL."""


class Skipped(Exception):
    """Why the check could not run (a missing credential)."""


def check_health(target: Target, http: httpx.Client) -> str:
    r = http.get("/health")
    body = r.json() if r.headers.get("content-type", "").startswith("application/json") else {}
    if r.status_code != 200:
        down = ", ".join(f"{k} {v}" for k, v in body.items() if k not in ("status", "version"))
        raise CheckFailed(f"/health answered {r.status_code}" + (f": {down}" if down else ""))
    parts = [f"{k} {v}" for k, v in body.items() if k not in ("status", "version")]
    return f"200, version {body.get('version', '?')}, " + ", ".join(parts)


def check_migrations(settings: Settings) -> str:
    """The schema of the database this machine's settings name is the one this release needs."""
    url = settings.store.database_url
    if not url:
        raise Skipped("DATABASE_URL is not set here (the SQLite store migrates itself at start)")

    async def probe() -> None:
        store = open_store(url, settings.store.data_dir, migrate=False, pool_size=1)
        await store.open()
        await store.close()

    try:
        asyncio.run(probe())
    except SchemaNotCurrent as exc:
        missing = ", ".join(exc.missing)
        raise CheckFailed(f"not applied: {missing} (run deploy/scripts/migrate)") from None
    except StoreUnavailable as exc:
        raise CheckFailed(f"database unreachable: {exc}") from None
    return "schema is current"


def _fix(target: Target) -> dict[str, object]:
    t = target.sent_at or datetime.now(UTC).replace(microsecond=0)
    target.sent_at = t
    return {"t": t.isoformat().replace("+00:00", "Z"), "lat": target.lat, "lon": target.lon}


def _report(target: Target, http: httpx.Client) -> httpx.Response:
    if not target.device_token:
        raise Skipped("no --device-token")
    return http.post(
        "/v1/telemetry/location",
        json={"fixes": [_fix(target)]},
        headers={"Authorization": f"Bearer {target.device_token}"},
    )


def check_device_report(target: Target, http: httpx.Client) -> str:
    r = _report(target, http)
    if r.status_code != 200:
        raise CheckFailed(f"POST /v1/telemetry/location answered {r.status_code}: {r.text[:200]}")
    body = r.json()
    if body.get("accepted", 0) + body.get("duplicates", 0) != 1:
        raise CheckFailed(f"the sample fix was not stored: {body.get('rejected')}")
    return "sample fix accepted"


def check_fleet_live(target: Target, http: httpx.Client) -> str:
    if not (target.username and target.password):
        raise Skipped("no --username / --password-stdin")
    login = http.post(
        "/v1/auth/login", json={"username": target.username, "password": target.password}
    )
    if login.status_code != 200:
        raise CheckFailed(f"sign-in answered {login.status_code}")
    target.access_token = login.json()["access_token"]
    r = http.get("/v1/fleet/live", headers={"Authorization": f"Bearer {target.access_token}"})
    if r.status_code != 200:
        raise CheckFailed(f"/v1/fleet/live answered {r.status_code}")
    vehicles = r.json()["vehicles"]
    if target.sent_at is None:
        return f"{len(vehicles)} vehicles listed"
    for v in vehicles:
        if v.get("t") and datetime.fromisoformat(v["t"]) == target.sent_at:
            return f"{len(vehicles)} vehicles listed, the sample fix as {v['name']}"
    raise CheckFailed(f"the sample fix is not among the {len(vehicles)} vehicles listed")


def check_live_stream(target: Target, http: httpx.Client) -> str:
    url = target.url.replace("https://", "wss://", 1).replace("http://", "ws://", 1)
    context = target.tls() if url.startswith("wss://") else None
    try:
        with connect(f"{url}/ws/public", open_timeout=target.timeout_s, ssl=context) as ws:
            frame = json.loads(ws.recv(timeout=target.timeout_s))
    except (OSError, TimeoutError, ValueError) as exc:
        raise CheckFailed(f"/ws/public: {exc}") from None
    except Exception as exc:  # the websockets library's handshake and close errors
        raise CheckFailed(f"/ws/public: {type(exc).__name__}: {exc}") from None
    return f"/ws/public sent a {frame.get('type', '?')} frame"


def check_pwa(target: Target, http: httpx.Client) -> str:
    page = http.get("/")
    if page.status_code != 200:
        raise CheckFailed(f"/ answered {page.status_code}")
    sw = http.get("/sw.js")
    if sw.status_code != 200:
        raise CheckFailed(f"/sw.js answered {sw.status_code}: the service worker is not served")
    kind = sw.headers.get("content-type", "")
    if "javascript" not in kind:
        raise CheckFailed(f"/sw.js is {kind or 'untyped'}, browsers register only JavaScript")
    caching = sw.headers.get("cache-control", "")
    if "no-cache" not in caching and "max-age=0" not in caching:
        raise CheckFailed(f"/sw.js Cache-Control is {caching!r}: phones would keep an old app")
    return "/ and /sw.js served, the service worker not cached"


def check_rate_limit(target: Target, http: httpx.Client) -> str:
    for sent in range(1, MAX_BURST + 1):
        r = _report(target, http)
        if r.status_code == 429:
            return f"429 after {sent} reports (Retry-After {r.headers.get('retry-after', '?')} s)"
        if r.status_code != 200:
            raise CheckFailed(f"report {sent} answered {r.status_code}")
    raise CheckFailed(f"no 429 after {MAX_BURST} reports from one device")


def run_checks(target: Target, settings: Settings) -> Iterator[Result]:
    """The checklist in the seed plan's order; the rate-limit burst last (it spends the budget)."""
    checks: list[tuple[str, Callable[[Target, httpx.Client], str]]] = [
        ("health", check_health),
        ("migrations", lambda _t, _h: check_migrations(settings)),
        ("device report", check_device_report),
        ("fleet live", check_fleet_live),
        ("live stream", check_live_stream),
        ("pwa", check_pwa),
        ("rate limit", check_rate_limit),
    ]
    with target.client() as http:
        for name, check in checks:
            try:
                yield Result(name, "ok", check(target, http))
            except Skipped as exc:
                yield Result(name, "skip", str(exc))
            except CheckFailed as exc:
                yield Result(name, "FAIL", str(exc))
            except httpx.HTTPError as exc:
                yield Result(name, "FAIL", f"{type(exc).__name__}: {exc}")


def report_line(result: Result) -> str:
    return f"[{result.outcome:<4}] {result.name}: {result.detail}"


def summary(results: list[Result]) -> str:
    counts = {o: sum(r.outcome == o for r in results) for o in ("ok", "FAIL", "skip")}
    return f"{counts['ok']} ok, {counts['FAIL']} failed, {counts['skip']} skipped"
