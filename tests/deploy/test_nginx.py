"""deploy/nginx.conf: `nginx -t` accepts it, and a real nginx running it in front of a real
server does what the file promises (TLS, headers, WebSocket, caching, limits)."""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest
from litestar import Response, get
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from server.access import access
from tests.deploy.nginx_proxy import Nginx, render
from tests.server.running import RunningServer, make_settings

# The server sets security headers itself (server/headers.py): nginx must not double them.
SERVER_HEADERS = {"X-Content-Type-Options": "nosniff", "Strict-Transport-Security": "max-age=1"}


@get("/console/app.js", opt=access("public"), media_type="text/javascript")
async def console_js() -> Response[str]:
    return Response("export {};\n", headers={"Cache-Control": "no-store", **SERVER_HEADERS})


SECURITY_HEADERS = (
    "strict-transport-security",
    "x-content-type-options",
    "x-frame-options",
    "referrer-policy",
)


@pytest.fixture(scope="module")
def proxied(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Nginx, RunningServer]]:
    server = RunningServer(make_settings(tmp_path_factory.mktemp("data")))
    server.extra_handlers = [console_js]
    server.start()
    port = server.url.rsplit(":", 1)[1]
    # Both upstream lines (the compose file's two API processes) point at the one server.
    nginx = render(tmp_path_factory.mktemp("nginx"), [f"127.0.0.1:{port}"] * 2)
    nginx.start()
    yield nginx, server
    nginx.stop()
    server.stop()


def socket_tls(nginx: Nginx) -> ssl.SSLContext:
    """TLS for websockets' threaded client: TLS 1.2.

    Under load this module failed 3 runs in 7 (CI included) with TLS 1.3: an upgrade answer
    never read (handshake timeout) or "[SSL] internal error". That client reads its socket
    in a thread while the caller writes the upgrade request, and under TLS 1.3 nginx's
    session tickets arrive after the handshake, so one connection is read and written from
    two threads at once, which OpenSSL does not allow. TLS 1.2 sends its ticket inside the
    handshake. The likely cause, not a proven one: plain CPU load did not reproduce it.
    """
    context = ssl.create_default_context(cafile=str(nginx.prefix / "fullchain.pem"))
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    return context


@pytest.fixture
def client(proxied: tuple[Nginx, RunningServer]) -> Iterator[httpx.Client]:
    # The throwaway certificate is self-signed: this client trusts it and nothing else.
    context = ssl.create_default_context(cafile=str(proxied[0].prefix / "fullchain.pem"))
    with httpx.Client(base_url=proxied[0].https, verify=context, timeout=20) as c:
        yield c


def test_nginx_t_accepts_the_shipped_file(tmp_path: Path) -> None:
    result = render(tmp_path, ["127.0.0.1:9"]).test_config()
    assert result.returncode == 0, result.stderr
    assert "test is successful" in result.stderr


def test_plain_http_is_redirected_to_https(proxied: tuple[Nginx, RunningServer]) -> None:
    r = httpx.get(f"{proxied[0].http}/v1/fleet/live?x=1", follow_redirects=False)
    assert r.status_code == 301
    assert r.headers["location"].startswith("https://127.0.0.1")
    assert r.headers["location"].endswith("/v1/fleet/live?x=1")


def test_health_passes_through_tls_with_security_headers(client: httpx.Client) -> None:
    r = client.get("/health")
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "ok"
    for name in SECURITY_HEADERS:
        assert name in r.headers, name
    assert r.headers["strict-transport-security"].startswith("max-age=31536000")


@pytest.mark.parametrize("path", ["/sw.js", "/manifest.webmanifest"])
def test_service_worker_and_manifest_are_never_cached(client: httpx.Client, path: str) -> None:
    r = client.get(path)
    assert r.status_code == 200
    # nginx says no-cache itself: a phone keeping an old worker would keep an old app.
    assert r.headers.get_list("cache-control") == ["no-cache"]
    # A location with caching rules must not lose the server-level security headers, nor
    # pass the server's own copies along beside nginx's.
    for name in SECURITY_HEADERS:
        assert len(r.headers.get_list(name)) == 1, name
    assert r.headers["strict-transport-security"].startswith("max-age=31536000")


def test_static_assets_are_cached_an_hour(client: httpx.Client) -> None:
    r = client.get("/console/app.js")
    assert r.status_code == 200
    assert r.headers.get_list("cache-control") == ["public, max-age=3600"]
    for name in SECURITY_HEADERS:
        assert len(r.headers.get_list(name)) == 1, name


def test_api_answers_keep_the_servers_own_caching(client: httpx.Client) -> None:
    r = client.get("/")
    assert r.headers.get_list("cache-control") == ["no-cache"]  # the landing page's own


def test_websocket_upgrade_reaches_the_live_stream(proxied: tuple[Nginx, RunningServer]) -> None:
    nginx = proxied[0]
    context = socket_tls(nginx)
    url = nginx.https.replace("https://", "wss://") + "/ws/public"
    with connect(url, ssl=context, open_timeout=20) as ws:
        frame = ws.recv(timeout=20)
    assert '"type":"snapshot"' in str(frame).replace(" ", "")


def test_riders_streams_are_capped_per_address(proxied: tuple[Nginx, RunningServer]) -> None:
    nginx = proxied[0]
    context = socket_tls(nginx)
    url = nginx.https.replace("https://", "wss://") + "/ws/public"
    with ExitStack() as stack:
        # 20 per address, as the server's PUBLIC_STREAMS_PER_ADDRESS default.
        for n in range(20):
            try:
                stack.enter_context(connect(url, ssl=context, open_timeout=20))
            except Exception as exc:
                log = (nginx.prefix / "error.log").read_text()[-3000:]
                raise AssertionError(f"stream {n} refused: {exc!r}\n{log}") from exc
        with pytest.raises(InvalidStatus) as refused:
            connect(url, ssl=context, open_timeout=20)
        assert refused.value.response.status_code == 503


def test_a_riders_reconnect_storm_is_answered_by_nginx(
    proxied: tuple[Nginx, RunningServer],
) -> None:
    nginx = proxied[0]
    context = socket_tls(nginx)
    url = nginx.https.replace("https://", "wss://") + "/ws/public"

    def open_from(source: str) -> None:
        # An address of its own, so the storm spends no other test's allowance.
        sock = socket.create_connection(
            ("127.0.0.1", nginx.https_port), timeout=20, source_address=(source, 0)
        )
        with connect(url, sock=sock, ssl=context, server_hostname="127.0.0.1", open_timeout=20):
            pass

    opened, limited = 0, 0
    for _ in range(60):
        try:
            open_from("127.0.0.3")
            opened += 1
        except InvalidStatus as exc:
            assert exc.response.status_code == 429
            limited += 1
    # nginx's burst (40) and its rate of two a second, then 429 from nginx itself; the
    # streams it let through were real ones, each answered by the server.
    assert opened >= 41 and limited > 0, (opened, limited)
    open_from("127.0.0.4")  # another address is not affected


def test_metrics_stay_private(client: httpx.Client) -> None:
    assert client.get("/metrics").status_code == 404


def test_sign_in_attempts_are_limited_per_address(client: httpx.Client) -> None:
    # GET costs the server nothing (405) and counts against nginx's zone like a POST: a
    # real sign-in would spend an argon2 hash per attempt to test the same line.
    statuses = [client.get("/v1/auth/login").status_code for _ in range(8)]
    # 10/minute with a burst of 5: the first attempts reach the server, then nginx answers
    # 429 (not its default 503, which a client would read as an outage).
    assert statuses[0] == 405
    assert 429 in statuses
    assert 503 not in statuses


def test_phone_reports_are_not_limited_per_address(client: httpx.Client) -> None:
    # Many phones behind one carrier NAT: reports to / carry a device id and are counted
    # per device by the server, so none of them meets nginx's per-address limit...
    reports = [
        client.get("/", params={"id": "unknown-device", "lat": 1, "lon": 2}) for _ in range(60)
    ]
    assert 429 not in [r.status_code for r in reports]
    # ...while the same burst of page loads from one address does.
    pages = [client.get("/").status_code for _ in range(60)]
    assert 429 in pages
