"""Redis clients with explicit timeouts; each use picks its database number (DESIGN.md)."""

from __future__ import annotations

import redis.asyncio as aioredis

CACHE_DB = 0
CELERY_DB = 1
GATEWAY_DB = 2
EVENTS_DB = 3


def make_redis(url: str, *, timeout_s: float = 2.0) -> aioredis.Redis:
    """An asyncio Redis client that fails fast instead of hanging when Redis is away."""
    return aioredis.Redis.from_url(
        url,
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
        health_check_interval=30,
        decode_responses=False,
    )
