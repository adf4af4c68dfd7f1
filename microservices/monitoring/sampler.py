"""The background sampler: probes every component, stores samples, evaluates alert rules, applies retention.

Replicas take turns through a PostgreSQL advisory lock, so each interval is sampled once however many run.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

import psutil
from fastapi import FastAPI
from sqlalchemy import text

from microservices.monitoring import service
from microservices.monitoring.config import Settings
from microservices.monitoring.models import Alert

logger = logging.getLogger(__name__)

# Any constant both replicas agree on: the lock of "monitoring sampler".
SAMPLER_LOCK_KEY = 0x6D6F6E5F73616D70
RETENTION_EVERY_S = 3600.0


class Sampler:
    """Samples the platform every `sample_interval_s` while the app runs."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self.settings: Settings = app.state.settings
        self.cycles = 0
        self.opened: list[Alert] = []
        self._last_retention = 0.0

    def probes(self) -> dict[str, Any]:
        state = self.app.state
        return service.component_probes(
            http=state.http,
            database=state.database,
            redis=state.redis,
            peers=self.settings.peer_urls(),
            celery_components=self.settings.celery_components,
        )

    async def sample_once(self) -> bool:
        """One cycle; False when another replica holds the turn."""
        health = await service.overall_health(probes=self.probes(), timeout_s=self.settings.component_timeout_s)
        disk = await asyncio.to_thread(psutil.disk_usage, self.settings.disk_path)
        async with self.app.state.database.sessionmaker() as session, session.begin():
            if not await session.scalar(text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": SAMPLER_LOCK_KEY}):
                return False
            await service.record_samples(session=session, components=health.services)
            await service.rollup_hourly(session=session)
            opened = await service.evaluate_alerts(
                session=session,
                components=health.services,
                disk_percent=disk.percent,
                disk_path=self.settings.disk_path,
                min_jobs=self.settings.job_failure_min_jobs,
            )
            if time.monotonic() - self._last_retention > RETENTION_EVERY_S:
                self._last_retention = time.monotonic()
                deleted = await service.apply_retention(
                    session=session,
                    raw_days=self.settings.raw_retention_days,
                    hourly_days=self.settings.hourly_retention_days,
                )
                logger.info("retention applied: %s", deleted)
        for alert in opened:
            logger.warning("alert opened: %s (%s)", alert.title, alert.subject)
        self.opened.extend(opened)
        self.cycles += 1
        return True

    async def run(self) -> None:
        """Sample forever at the configured interval."""
        while True:
            started = time.monotonic()
            try:
                await self.sample_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                logger.warning("health sampling failed: %s", exc)
            await asyncio.sleep(max(0.1, self.settings.sample_interval_s - (time.monotonic() - started)))


@contextlib.asynccontextmanager
async def run_sampler(app: FastAPI) -> Any:
    """Run the sampler during a lifespan."""
    sampler = Sampler(app)
    app.state.sampler = sampler
    task = asyncio.create_task(sampler.run(), name="monitoring-sampler")
    try:
        yield sampler
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
