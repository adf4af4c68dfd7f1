"""Endpoints of the service registry."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response, status

from microservices.common.auth import CurrentPrincipal, ServicePrincipal
from microservices.common.db import SessionDep
from microservices.common.pagination import Page, PageParamsDep
from microservices.service_registry import service as registry
from microservices.service_registry.crypto import decrypt
from microservices.service_registry.dependencies import (
    CheckerDep,
    FernetDep,
    PanelDep,
    RemoteHttpDep,
    ServiceDep,
    WriterPrincipal,
)
from microservices.service_registry.remote import probe
from microservices.service_registry.schemas import (
    ApiType,
    Build,
    ConnectionTest,
    ConnectionTestResult,
    CredentialRead,
    DjangoServiceUpsert,
    HealthLogRead,
    HealthRead,
    HealthStatus,
    PanelCreate,
    PanelRead,
    PanelUpdate,
    ServiceCreate,
    ServiceRead,
    ServiceUpdate,
    SyncResult,
)

router = APIRouter()


@router.get("/services", response_model=Page[ServiceRead], tags=["services"])
async def list_services(
    session: SessionDep,
    principal: CurrentPrincipal,
    params: PageParamsDep,
    api_type: ApiType | None = None,
    country_code: Annotated[str | None, Query(pattern=r"^[A-Za-z]{2}$")] = None,
    is_active: bool | None = None,
    health_status: HealthStatus | None = None,
    tag: Annotated[str | None, Query(max_length=50)] = None,
    search: Annotated[str | None, Query(max_length=100)] = None,
) -> Page[ServiceRead]:
    """List the registered services, filtered by type, country, active flag, health, tag or name."""
    return await registry.list_services(
        session=session,
        params=params,
        api_type=api_type,
        country_code=country_code,
        is_active=is_active,
        health_status=health_status,
        tag=tag,
        search=search,
    )


@router.post("/services", response_model=ServiceRead, status_code=status.HTTP_201_CREATED, tags=["services"])
async def create_service(
    session: SessionDep, principal: WriterPrincipal, fernet: FernetDep, service_in: ServiceCreate
) -> ServiceRead:
    """Register a service (admins and service admins)."""
    service = await registry.create_service(session=session, service_in=service_in, fernet=fernet)
    return registry.service_read(service)


@router.post("/services/test-connection", response_model=ConnectionTestResult, tags=["services"])
async def test_connection(
    principal: WriterPrincipal, http: RemoteHttpDep, checker: CheckerDep, test: ConnectionTest
) -> ConnectionTestResult:
    """Probe a URL with a protocol's health probe without saving anything (the admin's wizard)."""
    credential = test.credential.get_secret_value() if test.credential else None
    async with checker.semaphore:
        result = await probe(http, api_type=test.api_type, base_url=test.base_url, credential=credential)
    return ConnectionTestResult(
        status=result.status,
        http_status=result.http_status,
        response_time_ms=result.response_time_ms,
        error_message=result.error_message,
        details=result.details,
    )


@router.get("/services/{service_ref}", response_model=ServiceRead, tags=["services"])
async def get_service(service: ServiceDep, principal: CurrentPrincipal) -> ServiceRead:
    """One service, by numeric id or slug."""
    return registry.service_read(service)


@router.patch("/services/{service_ref}", response_model=ServiceRead, tags=["services"])
async def update_service(
    session: SessionDep,
    service: ServiceDep,
    principal: WriterPrincipal,
    fernet: FernetDep,
    checker: CheckerDep,
    service_in: ServiceUpdate,
) -> ServiceRead:
    """Change a service (admins and service admins)."""
    updated = await registry.update_service(session=session, service=service, service_in=service_in, fernet=fernet)
    if updated.last_checked_at is None:
        await checker.forget(updated.id)
    return registry.service_read(updated)


@router.delete("/services/{service_ref}", status_code=status.HTTP_204_NO_CONTENT, tags=["services"])
async def delete_service(
    session: SessionDep, service: ServiceDep, principal: WriterPrincipal, checker: CheckerDep
) -> Response:
    """Remove a service with its panels and health log (admins and service admins)."""
    service_id = service.id
    await registry.delete_service(session=session, service=service)
    await checker.forget(service_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/services/{service_ref}/panels", response_model=Page[PanelRead], tags=["panels"])
async def list_service_panels(
    session: SessionDep,
    service: ServiceDep,
    principal: CurrentPrincipal,
    params: PageParamsDep,
    build: Build | None = None,
    is_active: bool | None = None,
) -> Page[PanelRead]:
    """The reference panels of one service."""
    return await registry.list_panels(
        session=session, params=params, service_id=service.id, build=build, is_active=is_active
    )


@router.post(
    "/services/{service_ref}/panels", response_model=PanelRead, status_code=status.HTTP_201_CREATED, tags=["panels"]
)
async def create_panel(
    session: SessionDep, service: ServiceDep, principal: WriterPrincipal, panel_in: PanelCreate
) -> PanelRead:
    """Add a reference panel to a service (admins and service admins)."""
    panel = await registry.create_panel(session=session, service=service, panel_in=panel_in)
    return PanelRead.model_validate(panel)


@router.post("/services/{service_ref}/sync", response_model=SyncResult, tags=["panels"])
async def sync_service(
    session: SessionDep, service: ServiceDep, principal: WriterPrincipal, http: RemoteHttpDep, fernet: FernetDep
) -> SyncResult:
    """Read the panels (Michigan) or workflow capabilities (WES) from the service itself and apply them."""
    return await registry.sync_panels(session=session, service=service, http=http, fernet=fernet)


@router.get("/services/{service_ref}/health", response_model=HealthRead, tags=["health"])
async def get_health(
    session: SessionDep,
    service: ServiceDep,
    principal: CurrentPrincipal,
    checker: CheckerDep,
    refresh: bool = False,
) -> HealthRead:
    """The latest health of a service; `refresh=true` checks it now (at most once per 10 s per service)."""
    if refresh and await checker.may_refresh(service.id):
        (state,) = await checker.check_services(session=session, services=[service])
        await checker.cache([state])
        return state
    cached = await checker.cached(service.id)
    return cached if cached is not None else registry.health_read(service)


@router.get("/services/{service_ref}/health/history", response_model=Page[HealthLogRead], tags=["health"])
async def get_health_history(
    session: SessionDep, service: ServiceDep, principal: CurrentPrincipal, params: PageParamsDep
) -> Page[HealthLogRead]:
    """A service's health log, newest first."""
    return await registry.health_history(session=session, service_id=service.id, params=params)


@router.get("/reference-panels", response_model=Page[PanelRead], tags=["panels"])
async def list_panels(
    session: SessionDep,
    principal: CurrentPrincipal,
    params: PageParamsDep,
    service_id: Annotated[int | None, Query(ge=1)] = None,
    build: Build | None = None,
    population: Annotated[str | None, Query(max_length=50)] = None,
    is_active: bool | None = None,
) -> Page[PanelRead]:
    """Reference panels of every service, filtered by service, build, population or active flag."""
    return await registry.list_panels(
        session=session, params=params, service_id=service_id, build=build, population=population, is_active=is_active
    )


@router.get("/reference-panels/{panel_id}", response_model=PanelRead, tags=["panels"])
async def get_panel(panel: PanelDep, principal: CurrentPrincipal) -> PanelRead:
    """One reference panel."""
    return PanelRead.model_validate(panel)


@router.patch("/reference-panels/{panel_id}", response_model=PanelRead, tags=["panels"])
async def update_panel(
    session: SessionDep, panel: PanelDep, principal: WriterPrincipal, panel_in: PanelUpdate
) -> PanelRead:
    """Change a reference panel (admins and service admins)."""
    return PanelRead.model_validate(await registry.update_panel(session=session, panel=panel, panel_in=panel_in))


@router.delete("/reference-panels/{panel_id}", status_code=status.HTTP_204_NO_CONTENT, tags=["panels"])
async def delete_panel(session: SessionDep, panel: PanelDep, principal: WriterPrincipal) -> Response:
    """Remove a reference panel (admins and service admins)."""
    await registry.delete_panel(session=session, panel=panel)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/internal/services/{service_ref}/credential", response_model=CredentialRead, tags=["internal"])
async def get_credential(service: ServiceDep, principal: ServicePrincipal, fernet: FernetDep) -> CredentialRead:
    """A service's decrypted credential, for the platform's own services (service accounts) only."""
    return CredentialRead(
        credential=decrypt(fernet, service.credential_encrypted),
        auth_mode=service.auth_mode,
    )


@router.put("/internal/services/django/{django_id}", response_model=ServiceRead, tags=["internal"])
async def upsert_from_django(
    session: SessionDep,
    principal: ServicePrincipal,
    fernet: FernetDep,
    response: Response,
    django_id: Annotated[int, Path(ge=1)],
    upsert: DjangoServiceUpsert,
) -> ServiceRead:
    """Create or update the service the Django admin knows by `django_id` (idempotent; 201 when created)."""
    service, created = await registry.upsert_from_django(
        session=session, django_id=django_id, upsert=upsert, fernet=fernet
    )
    if created:
        response.status_code = status.HTTP_201_CREATED
    return registry.service_read(service)


@router.delete("/internal/services/django/{django_id}", status_code=status.HTTP_204_NO_CONTENT, tags=["internal"])
async def delete_from_django(
    session: SessionDep, principal: ServicePrincipal, django_id: Annotated[int, Path(ge=1)]
) -> Response:
    """Remove the service the Django admin knows by `django_id` (idempotent)."""
    await registry.delete_from_django(session=session, django_id=django_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
