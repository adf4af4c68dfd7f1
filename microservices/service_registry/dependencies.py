"""Dependencies of the service registry's endpoints: who may write, and the service or panel a path names."""

from __future__ import annotations

from typing import Annotated

import aiohttp
from cryptography.fernet import MultiFernet
from fastapi import Depends, Path, Request

from microservices.common.auth import Principal, require_roles
from microservices.common.db import SessionDep
from microservices.service_registry import service as registry
from microservices.service_registry.checker import HealthChecker
from microservices.service_registry.models import ImputationService, ReferencePanel

# Registering and changing services is for admins and service admins (service accounts always pass).
WriterPrincipal = Annotated[Principal, Depends(require_roles("admin", "service_admin"))]


async def valid_service(
    session: SessionDep,
    service_ref: Annotated[str, Path(description="Numeric id or slug", max_length=100)],
) -> ImputationService:
    """The service the path names by id or slug, or 404."""
    return await registry.get_service(session=session, id_or_slug=service_ref)


async def valid_panel(session: SessionDep, panel_id: Annotated[int, Path(ge=1)]) -> ReferencePanel:
    """The reference panel the path names, or 404."""
    return await registry.get_panel(session=session, panel_id=panel_id)


def get_checker(request: Request) -> HealthChecker:
    checker: HealthChecker = request.app.state.health_checker
    return checker


def get_fernet(request: Request) -> MultiFernet | None:
    fernet: MultiFernet | None = request.app.state.fernet
    return fernet


def get_remote_http(request: Request) -> aiohttp.ClientSession:
    http: aiohttp.ClientSession = request.app.state.remote_http
    return http


ServiceDep = Annotated[ImputationService, Depends(valid_service)]
PanelDep = Annotated[ReferencePanel, Depends(valid_panel)]
CheckerDep = Annotated[HealthChecker, Depends(get_checker)]
FernetDep = Annotated[MultiFernet | None, Depends(get_fernet)]
RemoteHttpDep = Annotated[aiohttp.ClientSession, Depends(get_remote_http)]
