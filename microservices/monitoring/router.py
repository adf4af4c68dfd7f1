"""Endpoints of the monitoring service."""

from __future__ import annotations

import asyncio
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request

from microservices.common.auth import CurrentPrincipal, Principal, require_roles
from microservices.common.db import SessionDep
from microservices.common.pagination import Page, PageParamsDep, paginate
from microservices.monitoring import service
from microservices.monitoring.config import Settings
from microservices.monitoring.schemas import (
    AlertRead,
    AlertRuleRead,
    AlertRuleUpdate,
    DashboardStats,
    OverallHealth,
    ServicesHealth,
    SystemMetrics,
)

router = APIRouter(tags=["health"])

# Operators: admins and service admins see the platform's internals.
Operator = Annotated[Principal, Depends(require_roles("admin", "service_admin"))]
Admin = Annotated[Principal, Depends(require_roles("admin"))]


@router.get("/health/overall", response_model=OverallHealth)
async def overall_health(request: Request) -> OverallHealth:
    """Health of every component of the platform, checked now and concurrently, with the open alerts."""
    settings: Settings = request.app.state.settings
    state = request.app.state
    probes = service.component_probes(
        http=state.http,
        database=state.database,
        redis=state.redis,
        peers=settings.peer_urls(),
        celery_components=settings.celery_components,
    )
    alerts = await service.active_alerts_if_reachable(database=state.database, timeout_s=settings.component_timeout_s)
    return await service.overall_health(probes=probes, timeout_s=settings.component_timeout_s, active_alerts=alerts)


@router.get("/health/services", response_model=ServicesHealth)
async def services_health(
    session: SessionDep,
    principal: Operator,
    history: Annotated[int, Query(ge=0, le=500, description="Recent samples per component")] = 20,
) -> ServicesHealth:
    """Each component's sampled history, with uptime over 24 hours and 7 days."""
    return await service.services_health(session=session, history_limit=history)


@router.get("/metrics/system", response_model=SystemMetrics)
async def system_metrics(request: Request, principal: Operator) -> SystemMetrics:
    """CPU, memory and disk of the host the monitoring service runs on."""
    settings: Settings = request.app.state.settings
    return await asyncio.to_thread(service.system_metrics, disk_path=settings.disk_path)


@router.get("/alerts", response_model=Page[AlertRead], tags=["alerts"])
async def list_alerts(
    session: SessionDep,
    principal: Operator,
    params: PageParamsDep,
    status: Literal["active", "resolved"] | None = None,
) -> Page[AlertRead]:
    """Alerts, newest first."""
    rows, total = await paginate(session, service.alerts_statement(status=status), params)
    return Page[AlertRead](
        items=[AlertRead.model_validate(r) for r in rows], total=total, page=params.page, page_size=params.page_size
    )


@router.post("/alerts/{alert_id}/acknowledge", response_model=AlertRead, tags=["alerts"])
async def acknowledge_alert(session: SessionDep, principal: Operator, alert_id: int) -> AlertRead:
    """Say someone is on it (the first acknowledgement is kept)."""
    alert = await service.acknowledge_alert(session=session, alert_id=alert_id, by=principal.username)
    return AlertRead.model_validate(alert)


@router.get("/alerts/rules", response_model=list[AlertRuleRead], tags=["alerts"])
async def list_rules(session: SessionDep, principal: Operator) -> list[AlertRuleRead]:
    """The alert rules and their thresholds."""
    return [AlertRuleRead.model_validate(r) for r in await service.list_rules(session=session)]


@router.patch("/alerts/rules/{rule_id}", response_model=AlertRuleRead, tags=["alerts"])
async def update_rule(session: SessionDep, principal: Admin, rule_id: int, rule_in: AlertRuleUpdate) -> AlertRuleRead:
    """Change a rule's threshold, duration, severity or whether it is evaluated (admin)."""
    return AlertRuleRead.model_validate(await service.update_rule(session=session, rule_id=rule_id, rule_in=rule_in))


@router.get("/dashboard/stats", response_model=DashboardStats, tags=["statistics"])
async def dashboard_stats(session: SessionDep, principal: CurrentPrincipal) -> DashboardStats:
    """Jobs by status, per service, active users and uploads over the last day, week and month."""
    return await service.dashboard_stats(session=session)
