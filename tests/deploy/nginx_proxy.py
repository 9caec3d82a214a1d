"""deploy/nginx.conf run by Debian's nginx in a temporary prefix, in front of test servers.

The file is used as shipped; only what names this machine is rewritten (listen ports, the
upstream servers, certificate and cache paths), and each rewrite must find its target, so a
change to the file that a rewrite no longer matches fails here instead of testing less.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.service_procs import _die_with_parent, _missing, free_port

ROOT = Path(__file__).resolve().parents[2]
CONF = ROOT / "deploy" / "nginx.conf"


def nginx_binary() -> str:
    found = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else "")
    if not found:
        _missing("nginx", "nginx")
    return found


def self_signed_cert(directory: Path) -> tuple[Path, Path]:
    """A throwaway certificate for 127.0.0.1, made by openssl."""
    cert, key = directory / "fullchain.pem", directory / "privkey.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"),
            *("-keyout", str(key), "-out", str(cert)),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


def _replace(text: str, old: str, new: str) -> str:
    assert old in text, f"deploy/nginx.conf no longer contains {old!r}: update the test rewrite"
    return text.replace(old, new)


@dataclass
class Nginx:
    prefix: Path
    http_port: int
    https_port: int
    process: subprocess.Popen[bytes] | None = None

    @property
    def https(self) -> str:
        return f"https://127.0.0.1:{self.https_port}"

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def main_conf(self) -> Path:
        return self.prefix / "nginx.conf"

    def _files(self) -> list[str]:
        return [
            "-p",
            str(self.prefix),
            "-c",
            str(self.main_conf),
            "-e",
            str(self.prefix / "error.log"),
        ]

    def test_config(self) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [nginx_binary(), "-t", *self._files()],
            capture_output=True,
            text=True,
        )

    def start(self) -> Nginx:
        self.process = subprocess.Popen(
            [nginx_binary(), *self._files(), "-g", "daemon off;"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=_die_with_parent(signal.SIGTERM),
        )
        deadline = time.monotonic() + 15
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.https_port), timeout=1).close()
                return self
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    log = (self.prefix / "error.log").read_text(errors="replace")
                    pytest.fail(f"nginx did not start:\n{log}", pytrace=False)
                time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGQUIT)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def render(prefix: Path, upstreams: list[str], worker_connections: int = 256) -> Nginx:
    """Write ``prefix/nginx.conf`` (a main file including the site file) for ``upstreams``."""
    prefix.mkdir(parents=True, exist_ok=True)
    cert, key = self_signed_cert(prefix)
    http_port, https_port = free_port(), free_port()
    site = CONF.read_text()
    site = _replace(site, "    server api1:3000 max_fails=3 fail_timeout=30s;\n", "")
    servers = "".join(f"    server {u} max_fails=3 fail_timeout=30s;\n" for u in upstreams)
    site = _replace(site, "    server api2:3000 max_fails=3 fail_timeout=30s;\n", servers)
    site = _replace(site, "listen 80;", f"listen 127.0.0.1:{http_port};")
    site = _replace(site, "listen 443 ssl http2;", f"listen 127.0.0.1:{https_port} ssl http2;")
    site = _replace(site, "    listen [::]:80;\n", "")
    site = _replace(site, "    listen [::]:443 ssl http2;\n", "")
    site = _replace(site, "/etc/nginx/ssl/fullchain.pem", str(cert))
    site = _replace(site, "/etc/nginx/ssl/privkey.pem", str(key))
    site = _replace(site, "/var/cache/nginx/bustracker", str(prefix / "cache"))
    site = _replace(site, "/var/www/certbot", str(prefix / "certbot"))
    # nginx's header deadline includes the TLS handshake, and on this shared 2-core box a
    # handshake has been seen to stall past 10 s (nginx then closes without an answer).
    # The deadline itself is the server's HEADER_TIMEOUT, tested there.
    site = _replace(site, "client_header_timeout 10s;", "client_header_timeout 60s;")
    (prefix / "bustracker.conf").write_text(site)
    temp = {
        name: prefix / "tmp" / name for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    }
    for path in temp.values():
        path.mkdir(parents=True, exist_ok=True)
    # As root the workers would switch to an unprivileged user that cannot read the
    # test's private temporary directory.
    user = "user root;\n" if os.geteuid() == 0 else ""
    (prefix / "nginx.conf").write_text(
        f"{user}pid {prefix / 'nginx.pid'};\n"
        "worker_processes 1;\n"
        f"events {{ worker_connections {worker_connections}; }}\n"
        "http {\n"
        "    include /etc/nginx/mime.types;\n"
        f"    access_log {prefix / 'access.log'};\n"
        + "".join(f"    {name}_temp_path {path};\n" for name, path in temp.items())
        + f"    include {prefix / 'bustracker.conf'};\n"
        "}\n"
    )
    return Nginx(prefix, http_port, https_port)
