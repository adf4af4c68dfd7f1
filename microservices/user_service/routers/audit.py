"""The audit log of logins, tokens and admin actions (admins)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query

from microservices.common.db import SessionDep
from microservices.common.pagination import Page, PageParamsDep
from microservices.user_service import schemas, service
from microservices.user_service.dependencies import AdminCaller

router = APIRouter(prefix="/audit", tags=["audit"])


@router.get("", response_model=Page[schemas.AuditEntryRead])
async def list_audit(
    principal: AdminCaller,
    session: SessionDep,
    params: PageParamsDep,
    user_id: Annotated[int | None, Query(description="Entries by or about this user")] = None,
    action: Annotated[str | None, Query(max_length=64, description='Exact action, or a prefix ending in "."')] = None,
    since: Annotated[datetime | None, Query(description="From this time on (inclusive)")] = None,
    until: Annotated[datetime | None, Query(description="Before this time")] = None,
    success: bool | None = None,
) -> Page[schemas.AuditEntryRead]:
    """Audit entries, newest first, filtered by user, action, time range and outcome."""
    entries, total = await service.list_audit(
        session=session, params=params, user_id=user_id, action=action, since=since, until=until, success=success
    )
    return Page[schemas.AuditEntryRead](
        items=[schemas.AuditEntryRead.model_validate(e) for e in entries],
        total=total,
        page=params.page,
        page_size=params.page_size,
    )
