"""Groups of users, their members and their service grants (admins and service admins)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from microservices.common.db import SessionDep
from microservices.common.pagination import Page, PageParamsDep
from microservices.user_service import schemas, service
from microservices.user_service.dependencies import ActorDep, GrantManager, ValidGroup

router = APIRouter(prefix="/groups", tags=["groups"])


@router.get("", response_model=Page[schemas.GroupRead])
async def list_groups(
    principal: GrantManager,
    session: SessionDep,
    params: PageParamsDep,
    search: Annotated[str | None, Query(max_length=100)] = None,
) -> Page[schemas.GroupRead]:
    """Every group, by name, with member counts."""
    items, total = await service.list_groups(session=session, params=params, search=search)
    return Page[schemas.GroupRead](items=items, total=total, page=params.page, page_size=params.page_size)


@router.post("", response_model=schemas.GroupRead, status_code=status.HTTP_201_CREATED)
async def create_group(
    body: schemas.GroupCreate, principal: GrantManager, session: SessionDep, actor: ActorDep
) -> schemas.GroupRead:
    """Create a group."""
    group = await service.create_group(session=session, actor=actor, group_in=body)
    return schemas.GroupRead.model_validate(group)


@router.get("/{group_id}", response_model=schemas.GroupDetail)
async def read_group(group: ValidGroup, session: SessionDep) -> schemas.GroupDetail:
    """A group with its members and grants."""
    return await service.group_detail(session=session, group=group)


@router.patch("/{group_id}", response_model=schemas.GroupDetail)
async def update_group(
    body: schemas.GroupUpdate, group: ValidGroup, session: SessionDep, actor: ActorDep
) -> schemas.GroupDetail:
    """Rename a group or change its description."""
    updated = await service.update_group(session=session, actor=actor, group=group, changes=body)
    return await service.group_detail(session=session, group=updated)


@router.delete("/{group_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_group(group: ValidGroup, session: SessionDep, actor: ActorDep) -> Response:
    """Delete a group with its memberships and grants."""
    await service.delete_group(session=session, actor=actor, group=group)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/{group_id}/members", response_model=schemas.GroupDetail)
async def add_member(
    body: schemas.GroupMemberAdd, group: ValidGroup, session: SessionDep, actor: ActorDep
) -> schemas.GroupDetail:
    """Put a user in the group."""
    user = await service.require_user(session=session, user_id=body.user_id)
    await service.add_member(session=session, actor=actor, group=group, user=user)
    return await service.group_detail(session=session, group=group)


@router.delete("/{group_id}/members/{user_id}", status_code=status.HTTP_204_NO_CONTENT)
async def remove_member(user_id: int, group: ValidGroup, session: SessionDep, actor: ActorDep) -> Response:
    """Take a user out of the group."""
    await service.remove_member(session=session, actor=actor, group=group, user_id=user_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/{group_id}/permissions", response_model=schemas.GrantRead)
async def grant_permission(
    body: schemas.GrantCreate, group: ValidGroup, session: SessionDep, actor: ActorDep, response: Response
) -> schemas.GrantRead:
    """Grant the group's members a service, with an optional monthly job quota (201 new, 200 changed)."""
    grant, created = await service.grant_service(session=session, actor=actor, grant_in=body, group=group)
    response.status_code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
    return schemas.GrantRead.model_validate(grant)


@router.delete("/{group_id}/permissions/{service_id}", status_code=status.HTTP_204_NO_CONTENT)
async def revoke_permission(service_id: int, group: ValidGroup, session: SessionDep, actor: ActorDep) -> Response:
    """Take back the group's grant of a service."""
    await service.revoke_service(session=session, actor=actor, service_id=service_id, group=group)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
