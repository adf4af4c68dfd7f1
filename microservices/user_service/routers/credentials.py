"""A user's own tokens for external services: stored encrypted, never shown back."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from microservices.common.db import SessionDep
from microservices.common.pagination import Page, PageParamsDep
from microservices.user_service import schemas, service
from microservices.user_service.dependencies import ActorDep, CurrentUser, FernetDep, SettingsDep

router = APIRouter(prefix="/users/me/service-credentials", tags=["service credentials"])


@router.post("", response_model=schemas.CredentialRead, status_code=status.HTTP_201_CREATED)
async def store_credential(
    body: schemas.CredentialCreate,
    user: CurrentUser,
    session: SessionDep,
    fernet: FernetDep,
    settings: SettingsDep,
    actor: ActorDep,
) -> schemas.CredentialRead:
    """Store (or replace) the caller's token for an external service; the token is never echoed."""
    credential = await service.store_credential(
        session=session, fernet=fernet, actor=actor, user=user, credential_in=body
    )
    return service.describe_credential(credential=credential, warning_days=settings.credential_warning_days)


@router.get("", response_model=Page[schemas.CredentialRead])
async def list_credentials(
    user: CurrentUser, session: SessionDep, settings: SettingsDep, params: PageParamsDep
) -> Page[schemas.CredentialRead]:
    """Which services the caller has a token stored for, with expiry and a warning within a week of it."""
    credentials, total = await service.list_credentials(session=session, user_id=user.id, params=params)
    return Page[schemas.CredentialRead](
        items=[
            service.describe_credential(credential=c, warning_days=settings.credential_warning_days)
            for c in credentials
        ],
        total=total,
        page=params.page,
        page_size=params.page_size,
    )


@router.delete("/{service_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_credential(service_id: int, user: CurrentUser, session: SessionDep, actor: ActorDep) -> Response:
    """Forget the caller's token for a service."""
    await service.delete_credential(session=session, actor=actor, user_id=user.id, service_id=service_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
