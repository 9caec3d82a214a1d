"""Alert email settings and a mail server that is down (the real send is in test_worker_cli)."""

from __future__ import annotations

import logging

import pytest

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
