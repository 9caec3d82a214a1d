"""Where the worker's alerts go: always the log, and email when ``SMTP_HOST`` is set.

Sending is best effort: a mail server that is down is logged and the next
alert tries again; it never stops the worker's maintenance.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import smtplib
from email.message import EmailMessage
from typing import Protocol

from server.settings import OpsSettings

log = logging.getLogger(__name__)

SMTP_TIMEOUT_S = 15.0
SMTPS_PORT = 465


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


class Alerts(Protocol):
    async def send(self, subject: str, body: str) -> None: ...


class LogAlerts:
    """Alerts as log lines at WARNING, where every deployment already looks."""

    async def send(self, subject: str, body: str) -> None:
        log.warning("ALERT %s", subject, extra={"alert_body": body})


class EmailAlerts:
    """One message per alert to ``ALERT_EMAIL_TO``; STARTTLS whenever the server offers it.

    A password goes only over TLS (or to a relay on this machine's loopback).
    """

    def __init__(self, settings: OpsSettings) -> None:
        if not settings.smtp_host:
            raise ValueError("EmailAlerts needs SMTP_HOST")
        self._settings = settings
        self.sent = 0

    def _message(self, subject: str, body: str) -> EmailMessage:
        msg = EmailMessage()
        msg["Subject"] = subject
        msg["From"] = self._settings.smtp_from
        msg["To"] = ", ".join(self._settings.alert_email_to)
        msg.set_content(body)
        return msg

    def _deliver(self, msg: EmailMessage) -> None:
        s = self._settings
        assert s.smtp_host is not None
        # 465 is SMTP over TLS from the first byte; other ports upgrade with STARTTLS.
        smtp_class = smtplib.SMTP_SSL if s.smtp_port == SMTPS_PORT else smtplib.SMTP
        with smtp_class(s.smtp_host, s.smtp_port, timeout=SMTP_TIMEOUT_S) as smtp:
            smtp.ehlo()
            tls = s.smtp_port == SMTPS_PORT
            if not tls and smtp.has_extn("starttls"):
                smtp.starttls()
                smtp.ehlo()
                tls = True
            if s.smtp_user and s.smtp_password:
                if not tls and not _loopback(s.smtp_host):
                    raise smtplib.SMTPException(
                        "the server offers no STARTTLS: SMTP_PASSWORD is not sent in the clear"
                    )
                smtp.login(s.smtp_user, s.smtp_password)
            smtp.send_message(msg)

    async def send(self, subject: str, body: str) -> None:
        try:
            # smtplib blocks; a thread keeps the worker's loop (and its /metrics) answering.
            await asyncio.to_thread(self._deliver, self._message(subject, body))
        except (OSError, smtplib.SMTPException) as exc:
            log.error("alert email to %s failed: %r", self._settings.smtp_host, exc)
            return
        self.sent += 1


class AllAlerts:
    """Every configured destination, in order."""

    def __init__(self, *destinations: Alerts) -> None:
        self.destinations = destinations

    async def send(self, subject: str, body: str) -> None:
        for destination in self.destinations:
            await destination.send(subject, body)


def configured_alerts(settings: OpsSettings) -> AllAlerts:
    if settings.smtp_host:
        return AllAlerts(LogAlerts(), EmailAlerts(settings))
    return AllAlerts(LogAlerts())
