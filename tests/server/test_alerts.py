"""Alert email: settings, a login with a password file, a mail server that is down.

The alert sent by a worker pass is in test_worker_cli.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from server.alerts import EmailAlerts, configured_alerts
from server.settings import SettingsError, load_settings
from tests.services import free_port


def test_email_settings_are_checked_together() -> None:
    with pytest.raises(SettingsError) as err:
        load_settings({"SMTP_HOST": "mail.example", "SMTP_USER": "u", "SMTP_PORT": "99999"})
    problems = "\n".join(err.value.problems)
    assert "SMTP_PORT: must be a TCP port" in problems
    assert "ALERT_EMAIL_TO: needed when SMTP_HOST is set" in problems
    assert "SMTP_USER/SMTP_PASSWORD: set both or neither" in problems
    ops = load_settings({"SMTP_HOST": "mail.example", "ALERT_EMAIL_TO": "a@x, b@x"}).ops
    assert ops.alert_email_to == ("a@x", "b@x")
    assert len(configured_alerts(ops).destinations) == 2
    assert len(configured_alerts(load_settings({}).ops).destinations) == 1


async def test_a_mail_server_that_is_down_is_logged_not_raised(
    caplog: pytest.LogCaptureFixture,
) -> None:
    ops = load_settings(
        {"SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(free_port()), "ALERT_EMAIL_TO": "ops@x"}
    ).ops
    alerts = EmailAlerts(ops)
    with caplog.at_level(logging.ERROR, logger="server.alerts"):
        await alerts.send("bustracker: test", "body")
    assert alerts.sent == 0
    assert "alert email to 127.0.0.1 failed" in caplog.text


# aiosmtpd warns that AUTH without TLS is unsafe: it is, off loopback, and the sender refuses it.
@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
async def test_login_with_a_password_file(tmp_path: Path) -> None:
    logins: list[tuple[bytes, bytes]] = []
    received: list[bytes] = []

    def authenticator(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> Any:
        assert isinstance(data, LoginPassword)
        logins.append((data.login, data.password))
        return AuthResult(success=data.password == b"s3cret")

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            received.append(envelope.content)
            return "250 OK"

    # No TLS here: allowed only because the relay is on loopback (a local postfix, say).
    controller = Controller(
        Handler(),
        hostname="127.0.0.1",
        port=free_port(),
        authenticator=authenticator,
        auth_require_tls=False,
        auth_required=True,
    )
    controller.start()
    try:
        secret = tmp_path / "smtp_password"
        secret.write_text("s3cret\n")
        ops = load_settings(
            {
                "SMTP_HOST": "127.0.0.1",
                "SMTP_PORT": str(controller.port),
                "SMTP_USER": "tracker",
                "SMTP_PASSWORD_FILE": str(secret),
                "ALERT_EMAIL_TO": "ops@x",
            }
        ).ops
        alerts = EmailAlerts(ops)
        await alerts.send("bustracker: test", "body")
    finally:
        controller.stop()
    assert logins == [(b"tracker", b"s3cret")]
    assert alerts.sent == 1 and b"Subject: bustracker: test" in received[0]
