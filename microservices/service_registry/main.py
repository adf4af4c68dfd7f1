"""Service registry: external imputation services, their reference panels, and their health."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from fastapi import FastAPI

from microservices.common.app import Lifespan, create_app
from microservices.common.events import run_outbox_relay
from microservices.service_registry.checker import HealthChecker, run_health_checker
from microservices.service_registry.config import Settings
from microservices.service_registry.crypto import make_fernet
from microservices.service_registry.remote import make_session
from microservices.service_registry.router import router


def _lifespan(settings: Settings) -> Lifespan:
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state = app.state
        state.fernet = make_fernet(settings)
        state.remote_http = make_session(
            connect_timeout_s=settings.health_connect_timeout_s, total_timeout_s=settings.health_total_timeout_s
        )
        state.health_checker = HealthChecker(
            settings=settings,
            sessionmaker=state.database.sessionmaker,
            http=state.remote_http,
            redis=state.redis,
            fernet=state.fernet,
        )
        try:
            async with contextlib.AsyncExitStack() as stack:
                if settings.events_enabled:
                    await stack.enter_async_context(run_outbox_relay(app))
                await stack.enter_async_context(
                    run_health_checker(state.health_checker, enabled=settings.health_check_enabled)
                )
                yield
        finally:
            await state.remote_http.close()

    return lifespan


def build_app(settings: Settings | None = None) -> FastAPI:
    """The service registry's ASGI app."""
    settings = settings or Settings()
    return create_app(
        settings=settings,
        title="Service registry",
        description="External imputation services, their reference panels, and their health.",
        routers=[router],
        lifespan=_lifespan(settings),
    )


def __getattr__(name: str) -> FastAPI:
    # `uvicorn microservices.service_registry.main:app` works without building an app at import time.
    if name == "app":
        return build_app()
    raise AttributeError(name)
