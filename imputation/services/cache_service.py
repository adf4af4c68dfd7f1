"""Service health for the admin, read from the registry through a cache whose lifetime follows the health.

Healthy answers are kept 15 minutes, unhealthy ones 1 minute (so a recovery shows soon), and an answer an admin
asked for explicitly 10 seconds. Django never probes a service itself.
"""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.core.cache import cache

from imputation.services.registry_client import RegistryClient, RegistryError

logger = logging.getLogger(__name__)


def cache_key(registry_id: int) -> str:
    return f"registry_health:{registry_id}"


def ttl_for(health: dict[str, Any], *, requested: bool) -> int:
    """How long to keep a health answer: shorter the more it may soon change."""
    if requested:
        return int(settings.REGISTRY_HEALTH_TTL_REQUESTED_S)
    if health.get("status") == "healthy":
        return int(settings.REGISTRY_HEALTH_TTL_HEALTHY_S)
    return int(settings.REGISTRY_HEALTH_TTL_UNHEALTHY_S)


def service_health(
    registry_id: int | None, *, refresh: bool = False, client: RegistryClient | None = None
) -> dict[str, Any] | None:
    """The registry's health of a service (`{status, response_time_ms, error_message, checked_at}`), or None."""
    if registry_id is None:
        return None
    if not refresh:
        cached = cache.get(cache_key(registry_id))
        if cached is not None:
            return dict(cached)
    try:
        if client is not None:
            health = client.health(registry_id, refresh=refresh)
        else:
            with RegistryClient() as registry:
                health = registry.health(registry_id, refresh=refresh)
    except RegistryError as exc:
        logger.warning("health of registry service %s not read: %s", registry_id, exc)
        return None
    cache.set(cache_key(registry_id), health, ttl_for(health, requested=refresh))
    return health
