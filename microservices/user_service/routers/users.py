"""Accounts: the caller's profile, admin CRUD, deactivation, and service permissions."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from microservices.common.db import SessionDep
from microservices.common.pagination import Page, PageParamsDep
from microservices.user_service import schemas, service
from microservices.user_service.dependencies import (
    ActorDep,
    AdminCaller,
    AdminTargetUser,
    CurrentUser,
    GrantManager,
    GrantTargetUser,
    PasswordsDep,
    PermissionsUser,
    RedisDep,
    VisibleUser,
)

router = APIRouter(prefix="/users", tags=["users"])


@router.get("/me", response_model=schemas.UserRead)
async def read_me(user: CurrentUser) -> schemas.UserRead:
    """The caller's account."""
    return schemas.UserRead.model_validate(user)


@router.patch("/me", response_model=schemas.UserRead)
async def update_me(
    body: schemas.ProfileUpdate, user: CurrentUser, session: SessionDep, actor: ActorDep
) -> schemas.UserRead:
    """Change the caller's name or e-mail address."""
    updated = await service.update_profile(session=session, actor=actor, user=user, changes=body)
    return schemas.UserRead.model_validate(updated)


@router.get("", response_model=Page[schemas.UserRead])
async def list_users(
    principal: GrantManager,
    session: SessionDep,
    params: PageParamsDep,
    search: Annotated[str | None, Query(max_length=100, description="Part of a username, name or e-mail")] = None,
    role: Annotated[schemas.Role | None, Query()] = None,
    is_active: bool | None = None,
) -> Page[schemas.UserRead]:
    """Every account, by id, with search and filters (admins; service admins, to grant services)."""
    users, total = await service.list_users(
        session=session, params=params, search=search, role=role, is_active=is_active
    )
    return Page[schemas.UserRead](
        items=[schemas.UserRead.model_validate(u) for u in users],
        total=total,
        page=params.page,
        page_size=params.page_size,
    )


@router.post("", response_model=schemas.UserRead, status_code=status.HTTP_201_CREATED)
async def create_user(
    body: schemas.UserCreate, principal: AdminCaller, session: SessionDep, passwords: PasswordsDep, actor: ActorDep
) -> schemas.UserRead:
    """Create an account with the given roles (admin)."""
    user = await service.create_user(
        session=session, passwords=passwords, user_in=body, roles=body.roles, is_active=body.is_active
    )
    await service.record_audit(
        session=session,
        actor=actor,
        action="user.create",
        target_type="user",
        target_id=user.id,
        details={"username": user.username, "roles": list(user.roles)},
    )
    return schemas.UserRead.model_validate(user)


@router.get("/{user_id}", response_model=schemas.UserRead)
async def read_user(user: VisibleUser) -> schemas.UserRead:
    """One account (the user himself, admins and the platform's services)."""
    return schemas.UserRead.model_validate(user)


@router.patch("/{user_id}", response_model=schemas.UserRead)
async def update_user(
    body: schemas.UserUpdate, user: AdminTargetUser, session: SessionDep, redis: RedisDep, actor: ActorDep
) -> schemas.UserRead:
    """Change an account's e-mail, names, roles or activity (admin)."""
    updated = await service.update_user(session=session, redis=redis, actor=actor, user=user, changes=body)
    return schemas.UserRead.model_validate(updated)


@router.delete("/{user_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_user(user: AdminTargetUser, session: SessionDep, redis: RedisDep, actor: ActorDep) -> Response:
    """Delete an account and what it owns; its audit entries stay (admin)."""
    await service.delete_user(session=session, redis=redis, actor=actor, user=user)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/{user_id}/deactivate", response_model=schemas.UserRead)
async def deactivate_user(
    user: AdminTargetUser, session: SessionDep, redis: RedisDep, actor: ActorDep
) -> schemas.UserRead:
    """Deactivate an account: its tokens stop working at once, everywhere (admin)."""
    updated = await service.set_user_active(session=session, redis=redis, actor=actor, user=user, active=False)
    return schemas.UserRead.model_validate(updated)


@router.post("/{user_id}/activate", response_model=schemas.UserRead)
async def activate_user(
    user: AdminTargetUser, session: SessionDep, redis: RedisDep, actor: ActorDep
) -> schemas.UserRead:
    """Reactivate an account (admin)."""
    updated = await service.set_user_active(session=session, redis=redis, actor=actor, user=user, active=True)
    return schemas.UserRead.model_validate(updated)


@router.get("/{user_id}/permissions", response_model=schemas.PermissionsRead)
async def read_permissions(user: PermissionsUser, session: SessionDep) -> schemas.PermissionsRead:
    """The services the user may use, directly or through his groups (the user, admins, service admins, services)."""
    return await service.effective_permissions(session=session, user=user)


@router.post("/{user_id}/permissions", response_model=schemas.GrantRead)
async def grant_permission(
    body: schemas.GrantCreate, user: GrantTargetUser, session: SessionDep, actor: ActorDep, response: Response
) -> schemas.GrantRead:
    """Grant the user a service, with an optional monthly job quota (201 new, 200 changed; admins)."""
    grant, created = await service.grant_service(session=session, actor=actor, grant_in=body, user=user)
    response.status_code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
    return schemas.GrantRead.model_validate(grant)


@router.patch("/{user_id}/permissions/{service_id}", response_model=schemas.GrantRead)
async def update_permission(
    service_id: int, body: schemas.GrantUpdate, user: GrantTargetUser, session: SessionDep, actor: ActorDep
) -> schemas.GrantRead:
    """Change the monthly job quota of the user's direct grant of a service; null is unlimited (admins)."""
    grant = await service.update_grant(session=session, actor=actor, service_id=service_id, grant_in=body, user=user)
    return schemas.GrantRead.model_validate(grant)


@router.delete("/{user_id}/permissions/{service_id}", status_code=status.HTTP_204_NO_CONTENT)
async def revoke_permission(service_id: int, user: GrantTargetUser, session: SessionDep, actor: ActorDep) -> Response:
    """Take back the user's direct grant of a service (admins)."""
    await service.revoke_service(session=session, actor=actor, service_id=service_id, user=user)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
