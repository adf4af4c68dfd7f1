"""Endpoints of the gateway itself: the aggregated dashboard and the merged API documentation."""

from typing import Any

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse

from microservices.gateway.dependencies import GatewayDep, LimitedPrincipal
from microservices.gateway.schemas import DashboardRead
from microservices.gateway.service import build_dashboard

router = APIRouter(prefix="/api", tags=["gateway"])


@router.get("/dashboard", response_model=DashboardRead)
async def dashboard(request: Request, principal: LimitedPrincipal, gateway: GatewayDep) -> DashboardRead:
    """The landing page's figures from the job processor, registry, notification and monitoring services."""
    return await build_dashboard(
        http=request.app.state.http,
        upstreams=gateway.upstreams,
        authorization=request.headers["authorization"],
        timeout_s=gateway.settings.aggregate_timeout_s,
    )


@router.get("/dashboard/stats", response_model=DashboardRead)
async def dashboard_stats(request: Request, principal: LimitedPrincipal, gateway: GatewayDep) -> DashboardRead:
    """The dashboard under the path the system we replace used (`job_stats`, `service_stats`, `recent_jobs`)."""
    return await dashboard(request, principal, gateway)


@router.get("/openapi.json", include_in_schema=False)
async def merged_openapi(request: Request, gateway: GatewayDep) -> dict[str, Any]:
    """One OpenAPI document of the whole public API (public: it describes, it does not serve)."""
    return await request.app.state.openapi_cache.get(
        http=request.app.state.http,
        upstreams=gateway.upstreams,
        own=request.app.openapi(),
        timeout_s=gateway.settings.aggregate_timeout_s,
    )


@router.get("/docs", include_in_schema=False)
async def docs() -> HTMLResponse:
    """Swagger UI on the merged OpenAPI document."""
    return get_swagger_ui_html(openapi_url="/api/openapi.json", title="Federated Imputation Platform API")
