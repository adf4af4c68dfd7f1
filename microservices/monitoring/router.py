"""Endpoints of the monitoring service."""

from fastapi import APIRouter, Request

from microservices.common.settings import FASTAPI_SERVICES
from microservices.monitoring import service
from microservices.monitoring.config import Settings
from microservices.monitoring.schemas import OverallHealth

router = APIRouter(tags=["health"])


@router.get("/health/overall", response_model=OverallHealth)
async def overall_health(request: Request) -> OverallHealth:
    """Health of every component of the platform, checked now and concurrently."""
    settings: Settings = request.app.state.settings
    state = request.app.state
    peers = settings.peer_urls()
    probes = {name: service.http_probe(state.http, peers[name]) for name in (*FASTAPI_SERVICES, "django")}
    probes["postgresql"] = service.database_probe(state.database)
    probes["redis"] = service.redis_probe(state.redis)
    for component in settings.celery_components:
        probes[f"celery_{component}"] = service.celery_probe(state.redis, component)
    return await service.overall_health(probes=probes, timeout_s=settings.component_timeout_s)
