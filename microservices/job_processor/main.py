"""Job processor: imputation jobs: protocol adapters, status history, templates, batches, schedules."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from fastapi import FastAPI

from microservices.common.app import create_app
from microservices.common.events import run_outbox_relay
from microservices.job_processor.config import Settings
from microservices.job_processor.crypto import make_fernet
from microservices.job_processor.dependencies import celery_enqueue
from microservices.job_processor.peers import Peers
from microservices.job_processor.router import router


def build_app(settings: Settings | None = None) -> FastAPI:
    """The job processor's ASGI app."""
    settings = settings or Settings()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.peers = Peers.from_settings(settings, app.state.http)
        app.state.fernet = make_fernet(settings)
        app.state.enqueue = celery_enqueue()
        async with run_outbox_relay(app):
            yield

    return create_app(
        settings=settings,
        title="Job processor",
        description="Imputation jobs: protocol adapters, status history, templates, batches, schedules.",
        routers=[router],
        lifespan=lifespan,
    )


def __getattr__(name: str) -> FastAPI:
    # `uvicorn microservices.job_processor.main:app` works without building an app at import time.
    if name == "app":
        return build_app()
    raise AttributeError(name)
