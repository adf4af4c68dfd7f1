"""The outgoing queues: e-mail over SMTP and signed webhook calls, each retried with exponential backoff.

Rows are claimed with `FOR UPDATE SKIP LOCKED`, so several replicas share the queues without sending twice.
A webhook request carries `X-Webhook-Timestamp` (Unix seconds) and
`X-Webhook-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>.<body>" with the webhook's secret>`; receivers
should recompute it and refuse timestamps older than a few minutes.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import smtplib
import ssl
import time
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage as MimeMessage

import httpx
from cryptography.fernet import MultiFernet
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from microservices.common.events import to_json
from microservices.notification.config import Settings
from microservices.notification.directory import Directory
from microservices.notification.models import EmailMessage, Webhook, WebhookDelivery

logger = logging.getLogger(__name__)

PRUNE_EVERY_S = 3600.0


def backoff_delay(*, attempts: int, base_s: float, cap_s: float = 3600.0) -> timedelta:
    """Delay before the next attempt after `attempts` failed ones: doubling from base, capped."""
    return timedelta(seconds=min(cap_s, base_s * 2 ** max(0, attempts - 1)))


def smtp_send(settings: Settings, *, recipients: list[str], subject: str, body_text: str, body_html: str) -> None:
    """Send one multipart e-mail (blocking: run it in a thread)."""
    message = MimeMessage()
    message["Subject"] = subject
    message["From"] = settings.smtp_from
    message["To"] = ", ".join(recipients)
    message.set_content(body_text)
    message.add_alternative(body_html, subtype="html")
    assert settings.smtp_host is not None
    context = ssl.create_default_context()
    client: smtplib.SMTP
    if settings.smtp_port == 465:
        client = smtplib.SMTP_SSL(
            settings.smtp_host, settings.smtp_port, timeout=settings.smtp_timeout_s, context=context
        )
    else:
        client = smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=settings.smtp_timeout_s)
    with client:
        if settings.smtp_use_tls and settings.smtp_port != 465:
            client.starttls(context=context)
        if settings.smtp_username:
            password = settings.smtp_password.get_secret_value() if settings.smtp_password else ""
            client.login(settings.smtp_username, password)
        client.send_message(message)


async def _recipients(message: EmailMessage, directory: Directory) -> list[str]:
    if message.user_id is None:
        return await directory.admin_emails()
    email = await directory.email_of(message.user_id)
    return [email] if email else []


async def send_due_emails(
    *, sessionmaker: async_sessionmaker[AsyncSession], settings: Settings, directory: Directory, batch_size: int = 20
) -> int:
    """Send the e-mails that are due; return how many were sent."""
    if not settings.smtp_configured:
        return 0
    sent = 0
    async with sessionmaker() as session, session.begin():
        messages = (
            await session.scalars(
                select(EmailMessage)
                .where(EmailMessage.status == "pending", EmailMessage.next_attempt_at <= datetime.now(UTC))
                .order_by(EmailMessage.next_attempt_at)
                .limit(batch_size)
                .with_for_update(skip_locked=True)
            )
        ).all()
        for message in messages:
            message.attempts += 1
            try:
                recipients = await _recipients(message, directory)
                if not recipients:
                    message.status, message.last_error = "failed", "no e-mail address for the recipient"
                    continue
                message.recipients = recipients
                await asyncio.to_thread(
                    smtp_send,
                    settings,
                    recipients=recipients,
                    subject=message.subject,
                    body_text=message.body_text,
                    body_html=message.body_html,
                )
            except Exception as exc:
                message.last_error = f"{type(exc).__name__}: {exc}"[:500]
                if message.attempts >= settings.email_max_attempts:
                    message.status = "failed"
                else:
                    message.next_attempt_at = datetime.now(UTC) + backoff_delay(
                        attempts=message.attempts, base_s=settings.email_retry_base_s
                    )
                logger.warning("e-mail %s not sent (attempt %s): %s", message.id, message.attempts, message.last_error)
                continue
            message.status, message.sent_at, message.last_error = "sent", datetime.now(UTC), None
            sent += 1
    return sent


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The signature header value of a webhook body."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


async def send_due_webhooks(
    *,
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
    http: httpx.AsyncClient,
    fernet: MultiFernet,
    batch_size: int = 20,
) -> int:
    """Call the webhooks whose deliveries are due; return how many succeeded."""
    succeeded = 0
    async with sessionmaker() as session, session.begin():
        rows = (
            await session.execute(
                select(WebhookDelivery, Webhook)
                .join(Webhook, Webhook.id == WebhookDelivery.webhook_id)
                .where(WebhookDelivery.status == "pending", WebhookDelivery.next_attempt_at <= datetime.now(UTC))
                .order_by(WebhookDelivery.next_attempt_at)
                .limit(batch_size)
                .with_for_update(of=WebhookDelivery, skip_locked=True)
            )
        ).all()
        for delivery, webhook in rows:
            delivery.attempts += 1
            body = to_json({"id": delivery.id, "webhook_id": webhook.id, **delivery.payload}).encode()
            timestamp = int(time.time())
            try:
                secret = fernet.decrypt(webhook.secret_encrypted.encode()).decode()
                response = await http.post(
                    webhook.url,
                    content=body,
                    headers={
                        "Content-Type": "application/json",
                        "X-Webhook-Id": str(delivery.id),
                        "X-Webhook-Event": delivery.event_type,
                        "X-Webhook-Timestamp": str(timestamp),
                        "X-Webhook-Signature": sign(secret, timestamp, body),
                    },
                    timeout=settings.webhook_timeout_s,
                )
                delivery.response_status = response.status_code
                if not 200 <= response.status_code < 300:
                    raise RuntimeError(f"the receiver answered {response.status_code}")
            except Exception as exc:
                delivery.last_error = f"{type(exc).__name__}: {exc}"[:500]
                if delivery.attempts >= settings.webhook_max_attempts:
                    delivery.status = "failed"
                else:
                    delivery.next_attempt_at = datetime.now(UTC) + backoff_delay(
                        attempts=delivery.attempts, base_s=settings.webhook_retry_base_s
                    )
                continue
            delivery.status, delivery.delivered_at, delivery.last_error = "succeeded", datetime.now(UTC), None
            succeeded += 1
    return succeeded


async def prune(*, sessionmaker: async_sessionmaker[AsyncSession], settings: Settings) -> dict[str, int]:
    """Forget what no one needs any more: sent or failed e-mails and finished deliveries (the event consumer forgets
    its processed event ids itself, after the same `retention_days`)."""
    cutoff = datetime.now(UTC) - timedelta(days=settings.retention_days)
    statements = {
        "email_message": delete(EmailMessage).where(EmailMessage.status != "pending", EmailMessage.created_at < cutoff),
        "webhook_delivery": delete(WebhookDelivery).where(
            WebhookDelivery.status != "pending", WebhookDelivery.created_at < cutoff
        ),
    }
    deleted = {}
    async with sessionmaker() as session, session.begin():
        for table, statement in statements.items():
            result = await session.execute(statement)
            deleted[table] = int(result.rowcount or 0)  # type: ignore[attr-defined]
    return deleted


class DeliveryWorker:
    """Runs both queues in the background, woken at once when a notification adds work."""

    def __init__(
        self,
        *,
        sessionmaker: async_sessionmaker[AsyncSession],
        settings: Settings,
        http: httpx.AsyncClient,
        fernet: MultiFernet,
        directory: Directory,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.settings = settings
        self.http = http
        self.fernet = fernet
        self.directory = directory
        self.wake = asyncio.Event()
        self._last_prune = 0.0

    async def run_once(self) -> tuple[int, int]:
        """One pass over both queues: (e-mails sent, webhook calls that succeeded)."""
        emails = await send_due_emails(sessionmaker=self.sessionmaker, settings=self.settings, directory=self.directory)
        hooks = await send_due_webhooks(
            sessionmaker=self.sessionmaker, settings=self.settings, http=self.http, fernet=self.fernet
        )
        return emails, hooks

    async def run(self) -> None:
        """Work the queues forever."""
        while True:
            self.wake.clear()
            try:
                await self.run_once()
                if time.monotonic() - self._last_prune > PRUNE_EVERY_S:
                    self._last_prune = time.monotonic()
                    logger.info("pruned: %s", await prune(sessionmaker=self.sessionmaker, settings=self.settings))
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                logger.warning("delivery pass failed: %s", exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), timeout=self.settings.delivery_poll_interval_s)
