"""Personal API tokens for scripts: create (shown once), list, revoke."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from microservices.common.db import SessionDep
from microservices.common.pagination import Page, PageParamsDep
from microservices.user_service import schemas, service
from microservices.user_service.dependencies import ActorDep, Caller, CurrentUser

router = APIRouter(prefix="/tokens", tags=["tokens"])


@router.post("", response_model=schemas.ApiTokenCreated, status_code=status.HTTP_201_CREATED)
async def create_token(
    body: schemas.ApiTokenCreate, user: CurrentUser, session: SessionDep, actor: ActorDep
) -> schemas.ApiTokenCreated:
    """Create an API token; the answer is the only time the token itself is shown."""
    token, secret = await service.create_api_token(session=session, actor=actor, user=user, token_in=body)
    return schemas.ApiTokenCreated(**schemas.ApiTokenRead.model_validate(token).model_dump(), token=secret)


@router.get("", response_model=Page[schemas.ApiTokenRead])
async def list_tokens(user: CurrentUser, session: SessionDep, params: PageParamsDep) -> Page[schemas.ApiTokenRead]:
    """The caller's API tokens, newest first (never the secrets)."""
    tokens, total = await service.list_api_tokens(session=session, user_id=user.id, params=params)
    return Page[schemas.ApiTokenRead](
        items=[schemas.ApiTokenRead.model_validate(t) for t in tokens],
        total=total,
        page=params.page,
        page_size=params.page_size,
    )


@router.delete("/{token_id}", status_code=status.HTTP_204_NO_CONTENT)
async def revoke_token(token_id: int, principal: Caller, session: SessionDep, actor: ActorDep) -> Response:
    """Revoke an API token: it stops working at once."""
    await service.revoke_api_token(session=session, actor=actor, principal=principal, token_id=token_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
