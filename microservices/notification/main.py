"""Notification service: in-app notifications, e-mail, preferences, WebSocket push and webhooks."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from fastapi import FastAPI
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from microservices.common.app import create_app
from microservices.common.events import (
    JOB_STATUS_UPDATED,
    NOTIFICATION_REQUESTED,
    SERVICE_HEALTH_CHANGED,
    Event,
    Handler,
    after_commit,
    events_redis,
    run_event_consumer,
)
from microservices.common.health import HealthCheck
from microservices.common.http import make_http_client
from microservices.common.redis import EVENTS_DB
from microservices.common.service_auth import ServiceTokenProvider
from microservices.notification import service
from microservices.notification.config import Settings
from microservices.notification.delivery import DeliveryWorker
from microservices.notification.directory import UserDirectory
from microservices.notification.models import EmailMessage
from microservices.notification.push import PushHub
from microservices.notification.router import router, socket_router
from microservices.notification.webhook_http import public_only_transport


def event_handler(app: FastAPI) -> Handler:
    """The handler of every topic this service consumes: notify, then push and wake the senders after commit."""

    async def handle(session: AsyncSession, event: Event) -> None:
        created = await service.notify_from_event(session=session, settings=app.state.settings, event=event)
        if created is None:
            return
        notification = created.notification
        if notification is not None:

            async def push() -> None:
                await app.state.push_hub.publish(notification)

            after_commit(session, push)
        if created.emails or created.webhook_deliveries:

            async def wake() -> None:
                app.state.delivery.wake.set()

            after_commit(session, wake)

    return handle


def smtp_check(app: FastAPI) -> HealthCheck:
    """A warning, not a failure, when e-mail cannot be sent: in-app notifications still work."""

    async def probe() -> str | None:
        settings: Settings = app.state.settings
        if settings.smtp_configured:
            return None
        async with app.state.database.sessionmaker() as session:
            waiting = await session.scalar(
                select(func.count()).select_from(EmailMessage).where(EmailMessage.status == "pending")
            )
        return f"SMTP is not configured (set SMTP_HOST); {waiting or 0} e-mails are waiting to be sent."

    return HealthCheck("smtp", probe, critical=False)


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    redis = events_redis(settings.redis_db_url(EVENTS_DB))
    app.state.push_hub = PushHub(redis=redis, prefix=settings.pubsub_prefix)
    app.state.directory = UserDirectory(
        http=app.state.http,
        base_url=settings.user_service_url,
        token_provider=ServiceTokenProvider.from_settings(settings, app.state.http),
        ttl_s=settings.directory_cache_ttl_s,
    )
    # Webhook calls reach public addresses only, checked when connecting, unless private ones are allowed.
    webhook_http = app.state.http
    if not settings.webhook_allow_private_urls:
        webhook_http = make_http_client(settings, transport=public_only_transport())
    app.state.delivery = DeliveryWorker(
        sessionmaker=app.state.database.sessionmaker,
        settings=settings,
        http=webhook_http,
        fernet=service.make_fernet(settings),
        directory=app.state.directory,
    )
    app.state.health_checks.append(smtp_check(app))
    tasks = [
        asyncio.create_task(app.state.push_hub.run(), name="notification-push"),
        asyncio.create_task(app.state.delivery.run(), name="notification-delivery"),
    ]
    handler = event_handler(app)
    handlers = dict.fromkeys((JOB_STATUS_UPDATED, SERVICE_HEALTH_CHANGED, NOTIFICATION_REQUESTED), handler)
    try:
        if settings.consume_events:
            async with run_event_consumer(
                app,
                group="notification",
                handlers=handlers,
                claim_idle_ms=settings.event_claim_idle_ms,
                retention_s=settings.retention_days * 86400,
            ):
                yield
        else:
            yield
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await redis.aclose()
        if webhook_http is not app.state.http:
            await webhook_http.aclose()


def build_app(settings: Settings | None = None) -> FastAPI:
    """The notification service's ASGI app."""
    return create_app(
        settings=settings or Settings(),
        title="Notification service",
        description="In-app notifications, e-mail, preferences, WebSocket push and webhooks.",
        routers=[router, socket_router],
        lifespan=lifespan,
    )


def __getattr__(name: str) -> FastAPI:
    # `uvicorn microservices.notification.main:app` works without building an app at import time.
    if name == "app":
        return build_app()
    raise AttributeError(name)
