"""File manager: streaming upload, VCF validation, checksums, storage and access-controlled download."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from fastapi import FastAPI

from microservices.common.app import create_app
from microservices.common.db import Database
from microservices.common.events import run_outbox_relay
from microservices.file_manager import service
from microservices.file_manager.config import Settings
from microservices.file_manager.router import router
from microservices.file_manager.storage import LocalStorage, Storage

logger = logging.getLogger(__name__)


async def retention_loop(*, database: Database, storage: Storage, settings: Settings) -> None:
    """Run retention every `cleanup_interval_s`, each run in its own session; a failed run waits for the next."""
    while True:
        try:
            # run_retention commits itself, before it deletes any bytes.
            async with database.sessionmaker() as session:
                await service.run_retention(session=session, storage=storage, settings=settings)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("retention run failed")
        await asyncio.sleep(settings.cleanup_interval_s)


def build_app(settings: Settings | None = None) -> FastAPI:
    """The file manager's ASGI app."""
    settings = settings or Settings()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.storage = LocalStorage(settings.storage_dir)
        retention = None
        if settings.cleanup_interval_s > 0:
            retention = asyncio.create_task(
                retention_loop(database=app.state.database, storage=app.state.storage, settings=settings),
                name="file-retention",
            )
        try:
            async with run_outbox_relay(app):
                yield
        finally:
            if retention is not None:
                retention.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await retention

    return create_app(
        settings=settings,
        title="File manager",
        description="Streaming upload, VCF validation, checksums, storage and access-controlled download.",
        routers=[router],
        lifespan=lifespan,
    )


def __getattr__(name: str) -> FastAPI:
    # `uvicorn microservices.file_manager.main:app` works without building an app at import time.
    if name == "app":
        return build_app()
    raise AttributeError(name)
