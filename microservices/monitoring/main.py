"""Monitoring service: health of every component, metrics, alerts and dashboard statistics."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession

from microservices.common.app import create_app
from microservices.common.events import (
    FILE_UPLOAD_COMPLETED,
    JOB_STATUS_UPDATED,
    SERVICE_HEALTH_CHANGED,
    USER_ACTION_LOGGED,
    Event,
    run_event_consumer,
    run_outbox_relay,
)
from microservices.monitoring import service
from microservices.monitoring.config import Settings
from microservices.monitoring.router import router
from microservices.monitoring.sampler import run_sampler

CONSUMED = (JOB_STATUS_UPDATED, FILE_UPLOAD_COMPLETED, USER_ACTION_LOGGED, SERVICE_HEALTH_CHANGED)


async def handle_event(session: AsyncSession, event: Event) -> None:
    """Fold a bus event into the statistics."""
    await service.record_event(session=session, event=event)


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    async with contextlib.AsyncExitStack() as stack:
        # The relay publishes the notification requests alerts write to the outbox.
        await stack.enter_async_context(run_outbox_relay(app))
        if settings.consume_events:
            await stack.enter_async_context(
                run_event_consumer(
                    app,
                    group="monitoring",
                    handlers=dict.fromkeys(CONSUMED, handle_event),
                    claim_idle_ms=settings.event_claim_idle_ms,
                )
            )
        if settings.sampler_enabled:
            await stack.enter_async_context(run_sampler(app))
        yield


def build_app(settings: Settings | None = None) -> FastAPI:
    """The monitoring service's ASGI app."""
    return create_app(
        settings=settings or Settings(),
        title="Monitoring service",
        description="Health of every component, metrics, alerts and dashboard statistics.",
        routers=[router],
        lifespan=lifespan,
    )


def __getattr__(name: str) -> FastAPI:
    # `uvicorn microservices.monitoring.main:app` works without building an app at import time.
    if name == "app":
        return build_app()
    raise AttributeError(name)
