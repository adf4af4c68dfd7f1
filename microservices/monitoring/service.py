"""Health of the whole platform: every component probed concurrently, none waited for past its timeout."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import httpx
from redis.asyncio import Redis

from microservices.common.db import Database
from microservices.common.heartbeat import live_workers_async
from microservices.monitoring.schemas import ComponentHealth, ComponentStatus, OverallHealth

# Without these nothing works; any other component down leaves the platform degraded, not down.
CRITICAL_COMPONENTS = frozenset({"postgresql", "redis", "gateway", "user_service"})

Probe = Callable[[], Awaitable[ComponentStatus]]


async def _timed(name: str, probe: Probe, timeout_s: float) -> ComponentHealth:
    started = time.perf_counter()
    error: str | None = None
    try:
        status = await asyncio.wait_for(probe(), timeout=timeout_s)
    except TimeoutError:
        status, error = "unhealthy", f"no answer within {timeout_s:g} s"
    except Exception as exc:
        status, error = "unhealthy", f"{type(exc).__name__}: {exc}"[:300]
    return ComponentHealth(
        service_name=name,
        status=status,
        response_time_ms=round((time.perf_counter() - started) * 1000, 2),
        checked_at=datetime.now(UTC),
        error=error,
    )


def http_probe(http: httpx.AsyncClient, base_url: str) -> Probe:
    """A component is as healthy as its own /health says; anything but 200 is unhealthy."""

    async def probe() -> ComponentStatus:
        response = await http.get(f"{base_url.rstrip('/')}/health")
        if response.status_code != 200:
            raise RuntimeError(f"/health answered {response.status_code}")
        return "degraded" if response.json().get("status") == "degraded" else "healthy"

    return probe


def database_probe(database: Database) -> Probe:
    async def probe() -> ComponentStatus:
        await database.ping()
        return "healthy"

    return probe


def redis_probe(client: Redis) -> Probe:
    async def probe() -> ComponentStatus:
        await client.ping()
        return "healthy"

    return probe


def celery_probe(client: Redis, component: str) -> Probe:
    async def probe() -> ComponentStatus:
        if not await live_workers_async(client, component):
            raise RuntimeError(f"no {component} worker heartbeat")
        return "healthy"

    return probe


def summarise(components: list[ComponentHealth]) -> ComponentStatus:
    """Unhealthy when a critical component is down, degraded when any other is, else healthy."""
    if any(c.status == "unhealthy" and c.service_name in CRITICAL_COMPONENTS for c in components):
        return "unhealthy"
    if any(c.status != "healthy" for c in components):
        return "degraded"
    return "healthy"


async def overall_health(*, probes: dict[str, Probe], timeout_s: float) -> OverallHealth:
    """Probe every component at once and sum up."""
    components = list(await asyncio.gather(*(_timed(n, p, timeout_s) for n, p in probes.items())))
    return OverallHealth(
        overall_status=summarise(components),
        services=components,
        active_alerts=[],
        checked_at=datetime.now(UTC),
    )
