"""The background health checker: every due service probed concurrently, a bounded number in flight.

Healthy services are checked every `health_interval_healthy_s` (15 min), the others every
`health_interval_unhealthy_s` (1 min); each check is a row of the health log, the latest state goes to Redis,
and a change of state is published as `service.health.changed`. Replicas of the registry take turns: a cycle
holds a PostgreSQL advisory lock for its transaction, and a replica that finds it taken skips that tick, so no
service is probed twice at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
from cryptography.fernet import MultiFernet
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from microservices.common.events import emit_many
from microservices.service_registry import service as registry
from microservices.service_registry.config import Settings
from microservices.service_registry.crypto import decrypt
from microservices.service_registry.models import ImputationService
from microservices.service_registry.remote import ProbeResult, probe
from microservices.service_registry.schemas import HealthRead

logger = logging.getLogger(__name__)

# The advisory lock of a health cycle (any fixed number: advisory locks are per database, and this one is ours).
_CYCLE_LOCK = 0x6865616C7468  # "health"


class HealthChecker:
    """Checks services' health with each protocol's probe and records what it finds."""

    def __init__(
        self,
        *,
        settings: Settings,
        sessionmaker: async_sessionmaker[AsyncSession],
        http: aiohttp.ClientSession,
        redis: Any,
        fernet: MultiFernet | None,
    ) -> None:
        self.settings = settings
        self.sessionmaker = sessionmaker
        self.http = http
        self.redis = redis
        self.fernet = fernet
        self.semaphore = asyncio.Semaphore(settings.health_max_concurrency)
        self.cycles = 0
        self.skipped_cycles = 0
        self.last_cycle_s: float | None = None
        self.last_probe_s: float | None = None

    def cache_key(self, service_id: int) -> str:
        return f"{self.settings.health_cache_prefix}{service_id}"

    async def _probe(self, service: ImputationService) -> ProbeResult:
        async with self.semaphore:
            return await probe(
                self.http,
                api_type=service.api_type,
                base_url=service.base_url,
                credential=decrypt(self.fernet, service.credential_encrypted),
            )

    async def check_services(self, *, session: AsyncSession, services: Sequence[ImputationService]) -> list[HealthRead]:
        """Probe `services` concurrently and record the results in `session` (the caller commits)."""
        started = time.perf_counter()
        results = await asyncio.gather(*(self._probe(s) for s in services))
        self.last_probe_s = time.perf_counter() - started
        checked_at = datetime.now(UTC)
        deactivate_after = timedelta(days=self.settings.health_deactivate_after_days)
        changes: list[tuple[str, dict[str, Any]]] = []
        for service, result in zip(services, results, strict=True):
            await registry.record_check(
                session=session,
                service=service,
                result=result,
                checked_at=checked_at,
                deactivate_after=deactivate_after,
                changes=changes,
            )
        # One statement for the cycle's events: emitting each alone flushed the session a thousand times.
        await emit_many(session, changes, producer=registry.PRODUCER)
        await session.flush()
        return [registry.health_read(s) for s in services]

    async def cache(self, states: Sequence[HealthRead]) -> None:
        """Keep the latest states in Redis; Redis being away only costs the cache."""
        if not states:
            return
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                for state in states:
                    pipe.set(self.cache_key(state.service_id), state.model_dump_json(), ex=86400)
                await pipe.execute()
        except Exception as exc:
            logger.warning("health cache not updated: %s", exc)

    async def cached(self, service_id: int) -> HealthRead | None:
        """The cached latest state of a service, if Redis has it."""
        try:
            raw = await self.redis.get(self.cache_key(service_id))
        except Exception as exc:
            logger.warning("health cache not read: %s", exc)
            return None
        return HealthRead.model_validate(json.loads(raw)) if raw else None

    async def forget(self, service_id: int) -> None:
        """Drop a service's cached state (after its address changed or it was removed)."""
        with contextlib.suppress(Exception):
            await self.redis.delete(self.cache_key(service_id))

    async def may_refresh(self, service_id: int) -> bool:
        """True at most once per `health_refresh_min_interval_s` for each service."""
        key = f"{self.settings.health_cache_prefix}refresh:{service_id}"
        try:
            return bool(
                await self.redis.set(key, b"1", nx=True, px=int(self.settings.health_refresh_min_interval_s * 1000))
            )
        except Exception:
            return True

    async def run_cycle(self) -> list[HealthRead]:
        """Check every service that is due, in one transaction; return their new states (none when another
        replica's cycle is running)."""
        started = time.perf_counter()
        async with self.sessionmaker() as session:
            if not await session.scalar(select(func.pg_try_advisory_xact_lock(_CYCLE_LOCK))):
                self.skipped_cycles += 1
                return []
            services = await registry.due_for_check(
                session=session,
                now=datetime.now(UTC),
                healthy_interval_s=self.settings.health_interval_healthy_s,
                unhealthy_interval_s=self.settings.health_interval_unhealthy_s,
            )
            states = await self.check_services(session=session, services=services) if services else []
            await session.commit()
        await self.cache(states)
        self.cycles += 1
        self.last_cycle_s = time.perf_counter() - started
        if states:
            logger.info("health cycle: %d services checked in %.2f s", len(states), self.last_cycle_s)
        return states

    async def prune(self) -> int:
        """Drop health-log rows older than `health_log_retention_days`."""
        older_than = datetime.now(UTC) - timedelta(days=self.settings.health_log_retention_days)
        async with self.sessionmaker() as session:
            deleted = await registry.prune_health_log(session=session, older_than=older_than)
            await session.commit()
        return deleted

    async def run(self) -> None:
        """Check due services forever, every `health_check_tick_s`; prune the log once an hour."""
        last_prune = -3600.0
        while True:
            try:
                if time.monotonic() - last_prune >= 3600:
                    last_prune = time.monotonic()
                    await self.prune()
                await self.run_cycle()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("health cycle failed")
            await asyncio.sleep(self.settings.health_check_tick_s)


@contextlib.asynccontextmanager
async def run_health_checker(checker: HealthChecker, *, enabled: bool) -> AsyncIterator[None]:
    """Run the checker's loop as a task for the lifespan of the app (when enabled)."""
    task = asyncio.create_task(checker.run(), name="health-checker") if enabled else None
    try:
        yield
    finally:
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
