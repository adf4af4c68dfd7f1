"""Domain logic of the notifications: creating them from events, channels per preference, queues, webhooks."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import html
import ipaddress
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from cryptography.fernet import Fernet, MultiFernet
from sqlalchemy import Select, delete, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from microservices.common.auth import Principal
from microservices.common.errors import BadRequest, NotFound, ServiceUnavailable
from microservices.common.events import Event
from microservices.notification.config import Settings
from microservices.notification.models import (
    EmailMessage,
    Notification,
    NotificationPreference,
    Webhook,
    WebhookDelivery,
)
from microservices.notification.schemas import ChannelChoice, NotificationRead, PreferenceRead, WebhookCreate

# Channels of each notification type when the user has not chosen: (in-app, e-mail, webhook).
# A webhook is opt-in by registering one, so that channel defaults to on.
DEFAULT_CHANNELS: dict[str, tuple[bool, bool, bool]] = {
    "job_completed": (True, True, True),
    "job_failed": (True, True, True),
    "job_cancelled": (True, False, True),
    "job_status": (False, False, False),
    "service_health": (True, True, False),
    "alert": (True, True, False),
    "system": (True, False, False),
}
FALLBACK_CHANNELS = (True, False, False)

JOB_TYPES = {"completed": "job_completed", "failed": "job_failed", "cancelled": "job_cancelled"}


@dataclass
class Created:
    """What one notification request produced, for the work done after commit (push, wake the senders)."""

    notification: NotificationRead | None = None
    emails: int = 0
    webhook_deliveries: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


# --- reading and marking ------------------------------------------------------------------------------------------


def visible_to(principal: Principal) -> Any:
    """Rows the caller may see: their own, and the admins' shared ones for an admin."""
    own = Notification.user_id == principal.user_id
    return or_(own, Notification.user_id.is_(None)) if principal.is_admin else own


def list_statement(*, principal: Principal, unread_only: bool) -> Select[Any]:
    """The caller's notifications, newest first."""
    statement = select(Notification).where(visible_to(principal)).order_by(Notification.id.desc())
    if unread_only:
        statement = statement.where(Notification.is_read.is_(False))
    return statement


async def unread_count(*, session: AsyncSession, principal: Principal) -> int:
    """How many of the caller's notifications are unread."""
    count = await session.scalar(
        select(func.count()).select_from(Notification).where(visible_to(principal), Notification.is_read.is_(False))
    )
    return int(count or 0)


async def get_notification(*, session: AsyncSession, principal: Principal, notification_id: int) -> Notification:
    """One of the caller's notifications, or NotFound (someone else's is not found either)."""
    notification = await session.scalar(
        select(Notification).where(Notification.id == notification_id, visible_to(principal))
    )
    if notification is None:
        raise NotFound(f"Notification {notification_id} was not found.", code="notification_not_found")
    return notification


async def mark_read(*, session: AsyncSession, principal: Principal, notification_id: int) -> Notification:
    """Mark one notification read (idempotent)."""
    notification = await get_notification(session=session, principal=principal, notification_id=notification_id)
    if not notification.is_read:
        notification.is_read = True
        notification.read_at = datetime.now(UTC)
        await session.flush()
    return notification


async def mark_all_read(*, session: AsyncSession, principal: Principal) -> int:
    """Mark every unread notification of the caller read; return how many."""
    result = await session.execute(
        update(Notification)
        .where(visible_to(principal), Notification.is_read.is_(False))
        .values(is_read=True, read_at=func.now())
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def delete_notification(*, session: AsyncSession, principal: Principal, notification_id: int) -> None:
    """Delete one of the caller's notifications."""
    notification = await get_notification(session=session, principal=principal, notification_id=notification_id)
    await session.delete(notification)
    await session.flush()


# --- preferences --------------------------------------------------------------------------------------------------


async def channels_for(*, session: AsyncSession, user_id: int | None, event_type: str) -> tuple[bool, bool, bool]:
    """The channels one notification type goes to for a user (admins' shared notifications use the defaults)."""
    if user_id is not None:
        chosen = await session.get(NotificationPreference, (user_id, event_type))
        if chosen is not None:
            return chosen.in_app, chosen.email, chosen.webhook
    return DEFAULT_CHANNELS.get(event_type, FALLBACK_CHANNELS)


async def get_preferences(*, session: AsyncSession, user_id: int) -> list[PreferenceRead]:
    """Every known type's channels for the user, defaults filled in."""
    rows = (
        await session.scalars(select(NotificationPreference).where(NotificationPreference.user_id == user_id))
    ).all()
    chosen = {row.event_type: row for row in rows}
    result = []
    for event_type in sorted(set(DEFAULT_CHANNELS) | set(chosen)):
        if event_type in chosen:
            row = chosen[event_type]
            result.append(
                PreferenceRead(
                    event_type=event_type, in_app=row.in_app, email=row.email, webhook=row.webhook, is_default=False
                )
            )
        else:
            in_app, email, webhook = DEFAULT_CHANNELS[event_type]
            result.append(
                PreferenceRead(event_type=event_type, in_app=in_app, email=email, webhook=webhook, is_default=True)
            )
    return result


async def set_preferences(
    *, session: AsyncSession, user_id: int, preferences: dict[str, ChannelChoice]
) -> list[PreferenceRead]:
    """Store the user's choice for each named type; return every type's channels."""
    unknown = sorted(set(preferences) - set(DEFAULT_CHANNELS))
    if unknown:
        raise BadRequest(
            f"Unknown notification types: {', '.join(unknown)}. Known: {', '.join(sorted(DEFAULT_CHANNELS))}.",
            code="unknown_notification_type",
        )
    for event_type, choice in preferences.items():
        values = {"in_app": choice.in_app, "email": choice.email, "webhook": choice.webhook}
        await session.execute(
            pg_insert(NotificationPreference)
            .values(user_id=user_id, event_type=event_type, **values)
            .on_conflict_do_update(index_elements=["user_id", "event_type"], set_={**values, "updated_at": func.now()})
        )
    await session.flush()
    return await get_preferences(session=session, user_id=user_id)


# --- creating notifications ---------------------------------------------------------------------------------------


def render_email(*, title: str, message: str, link: str | None, public_url: str) -> tuple[str, str, str]:
    """Subject, plain-text body and HTML body of a notification e-mail."""
    url = f"{public_url.rstrip('/')}{link}" if link and link.startswith("/") else link
    text = f"{message}\n"
    if url:
        text += f"\nOpen it here: {url}\n"
    text += "\nYou receive this e-mail because of your notification preferences; change them in the web app.\n"
    link_html = f'<p><a href="{html.escape(url, quote=True)}">Open it here</a></p>' if url else ""
    body_html = (
        "<!doctype html><html><body>"
        f"<h2>{html.escape(title)}</h2><p>{html.escape(message)}</p>{link_html}"
        "<p><small>You receive this e-mail because of your notification preferences; "
        "change them in the web app.</small></p></body></html>"
    )
    return title, text, body_html


async def notify(
    *,
    session: AsyncSession,
    settings: Settings,
    user_id: int | None,
    type: str,
    title: str,
    message: str,
    link: str | None = None,
    data: dict[str, Any] | None = None,
    event_id: str | None = None,
) -> Created:
    """Create a notification on each channel the user's preferences name; user_id None means every admin."""
    in_app, email, webhook = await channels_for(session=session, user_id=user_id, event_type=type)
    created = Created()
    if in_app:
        notification = Notification(
            user_id=user_id,
            type=type,
            title=title[:200],
            message=message,
            link=link,
            data=data or {},
            event_id=event_id,
            # Set here rather than by the database, so that the push needs no extra round trip to read them.
            is_read=False,
            created_at=datetime.now(UTC),
        )
        session.add(notification)
        await session.flush()
        created.notification = NotificationRead.model_validate(notification)
    if email:
        subject, body_text, body_html = render_email(
            title=title, message=message, link=link, public_url=settings.public_url
        )
        session.add(
            EmailMessage(
                user_id=user_id,
                notification_type=type,
                subject=subject[:300],
                body_text=body_text,
                body_html=body_html,
                next_attempt_at=datetime.now(UTC),
            )
        )
        created.emails = 1
    if webhook and user_id is not None:
        hooks = (
            await session.scalars(select(Webhook).where(Webhook.user_id == user_id, Webhook.is_active.is_(True)))
        ).all()
        for hook in hooks:
            if hook.event_types and type not in hook.event_types:
                continue
            payload = {
                "type": type,
                "title": title,
                "message": message,
                "link": link,
                "data": data or {},
                "user_id": user_id,
                "event_id": event_id,
                "created_at": datetime.now(UTC).isoformat(),
            }
            session.add(
                WebhookDelivery(webhook_id=hook.id, event_type=type, payload=payload, next_attempt_at=datetime.now(UTC))
            )
            created.webhook_deliveries += 1
    await session.flush()
    return created


async def notify_from_event(*, session: AsyncSession, settings: Settings, event: Event) -> Created | None:
    """Turn one bus event into notifications; None for an event that tells nobody anything."""
    payload = event.payload
    if event.topic == "job.status.updated":
        new_status = str(payload.get("new_status", ""))
        job_name = str(payload.get("job_name") or payload.get("job_id"))
        kind = JOB_TYPES.get(new_status, "job_status")
        titles = {
            "completed": f"Job '{job_name}' completed",
            "failed": f"Job '{job_name}' failed",
            "cancelled": f"Job '{job_name}' was cancelled",
        }
        title = titles.get(new_status, f"Job '{job_name}' is {new_status}")
        message = str(payload.get("message") or title + ".")
        if payload.get("user_id") is None:
            return None
        return await notify(
            session=session,
            settings=settings,
            user_id=int(payload["user_id"]),
            type=kind,
            title=title,
            message=message,
            link=f"/jobs/{payload.get('job_id')}",
            data={k: payload.get(k) for k in ("job_id", "service_id", "old_status", "new_status")},
            event_id=event.id,
        )
    if event.topic == "service.health.changed":
        name = str(payload.get("name") or payload.get("service_id"))
        new_status = str(payload.get("new_status", "unknown"))
        error = payload.get("error")
        message = f"{name} went from {payload.get('old_status')} to {new_status}." + (f" {error}" if error else "")
        return await notify(
            session=session,
            settings=settings,
            user_id=None,
            type="service_health",
            title=f"Service {name} is {new_status}",
            message=message,
            link=f"/services/{payload.get('service_id')}",
            data={k: payload.get(k) for k in ("service_id", "old_status", "new_status")},
            event_id=event.id,
        )
    if event.topic == "notification.requested":
        user_id = payload.get("user_id")
        return await notify(
            session=session,
            settings=settings,
            user_id=int(user_id) if user_id is not None else None,
            type=str(payload.get("type") or "system")[:50],
            title=str(payload.get("title") or "Notification"),
            message=str(payload.get("message") or ""),
            link=payload.get("link"),
            data=payload.get("data") or {},
            event_id=event.id,
        )
    return None


# --- webhooks -----------------------------------------------------------------------------------------------------


def make_fernet(settings: Settings) -> MultiFernet:
    """Fernet for webhook secrets: FERNET_KEY (comma-separated keys rotate), or a fixed key in development."""
    if settings.fernet_key is not None and settings.fernet_key.get_secret_value().strip():
        keys = [k.strip() for k in settings.fernet_key.get_secret_value().split(",") if k.strip()]
        return MultiFernet([Fernet(k) for k in keys])
    if settings.environment == "production":
        raise ServiceUnavailable("FERNET_KEY is not set, so webhook secrets cannot be stored.", code="no_fernet_key")
    # Development and tests only: stable across restarts and replicas, worthless as protection.
    key = base64.urlsafe_b64encode(hashlib.sha256(b"federated-imputation development webhook key").digest())
    return MultiFernet([Fernet(key)])


def check_webhook_url(url: str, *, allow_private: bool) -> None:
    """Refuse URLs that point into the platform's own network (loopback, private, link-local addresses)."""
    if allow_private:
        return
    host = (urlsplit(url).hostname or "").strip("[]").lower()
    if host == "localhost" or host.endswith((".localhost", ".internal", ".local")):
        raise BadRequest(f"Webhooks cannot point at {host}.", code="webhook_url_not_allowed")
    with contextlib.suppress(ValueError):
        address = ipaddress.ip_address(host)
        if not address.is_global:
            raise BadRequest(f"Webhooks cannot point at the private address {host}.", code="webhook_url_not_allowed")


async def create_webhook(
    *, session: AsyncSession, fernet: MultiFernet, user_id: int, webhook_in: WebhookCreate, allow_private: bool = False
) -> tuple[Webhook, str]:
    """Register a webhook; return it with its signing secret (shown to the user once)."""
    check_webhook_url(str(webhook_in.url), allow_private=allow_private)
    secret = "whsec_" + secrets.token_urlsafe(32)
    webhook = Webhook(
        user_id=user_id,
        url=str(webhook_in.url),
        description=webhook_in.description,
        event_types=sorted(set(webhook_in.event_types)),
        secret_encrypted=fernet.encrypt(secret.encode()).decode(),
    )
    session.add(webhook)
    await session.flush()
    await session.refresh(webhook)
    return webhook, secret


def webhooks_statement(*, user_id: int) -> Select[Any]:
    """The user's webhooks, oldest first."""
    return select(Webhook).where(Webhook.user_id == user_id).order_by(Webhook.id)


async def get_webhook(*, session: AsyncSession, user_id: int, webhook_id: int) -> Webhook:
    """One of the user's webhooks, or NotFound."""
    webhook = await session.scalar(select(Webhook).where(Webhook.id == webhook_id, Webhook.user_id == user_id))
    if webhook is None:
        raise NotFound(f"Webhook {webhook_id} was not found.", code="webhook_not_found")
    return webhook


async def delete_webhook(*, session: AsyncSession, user_id: int, webhook_id: int) -> None:
    """Remove one of the user's webhooks and its delivery log."""
    webhook = await get_webhook(session=session, user_id=user_id, webhook_id=webhook_id)
    await session.execute(delete(WebhookDelivery).where(WebhookDelivery.webhook_id == webhook.id))
    await session.delete(webhook)
    await session.flush()


def deliveries_statement(*, webhook_id: int) -> Select[Any]:
    """A webhook's deliveries, newest first."""
    return select(WebhookDelivery).where(WebhookDelivery.webhook_id == webhook_id).order_by(WebhookDelivery.id.desc())
