"""Login, registration, refresh, logout, password change, the caller, and service-account tokens."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Response, status

from microservices.common.errors import BadRequest, Forbidden
from microservices.user_service import schemas, service
from microservices.user_service.dependencies import (
    ActorDep,
    AnonymousActorDep,
    AuditedSessionDep,
    CurrentUser,
    LenientCaller,
    PasswordsDep,
    RedisDep,
    SettingsDep,
    SignerDep,
    ThrottleDep,
)

router = APIRouter(prefix="/auth", tags=["auth"])


def _token_pair(started: service.IssuedSession) -> schemas.TokenPair:
    return schemas.TokenPair(
        access_token=started.access.token,
        refresh_token=started.refresh_token,
        expires_in=started.access.expires_in,
        user=schemas.UserRead.model_validate(started.user),
    )


@router.post("/login", response_model=schemas.TokenPair)
async def login(
    body: schemas.LoginRequest,
    session: AuditedSessionDep,
    redis: RedisDep,
    signer: SignerDep,
    settings: SettingsDep,
    passwords: PasswordsDep,
    throttle: ThrottleDep,
    actor: AnonymousActorDep,
) -> schemas.TokenPair:
    """Log in with a username or e-mail address and a password; answers an access and a refresh token."""
    started = await service.login(
        session=session,
        redis=redis,
        signer=signer,
        settings=settings,
        passwords=passwords,
        throttle=throttle,
        actor=actor,
        login_name=body.username,
        password=body.password,
    )
    return _token_pair(started)


@router.post("/register", response_model=schemas.UserRead, status_code=status.HTTP_201_CREATED)
async def register(
    body: schemas.RegisterRequest,
    session: AuditedSessionDep,
    settings: SettingsDep,
    passwords: PasswordsDep,
    actor: AnonymousActorDep,
) -> schemas.UserRead:
    """Create a researcher account (when registration is enabled)."""
    if not settings.registration_enabled:
        raise Forbidden("Registration is closed; ask an administrator for an account.", code="registration_disabled")
    user = await service.create_user(session=session, passwords=passwords, user_in=body)
    await service.record_audit(
        session=session,
        actor=service.Actor(user_id=user.id, name=user.username, ip_address=actor.ip_address),
        action="auth.register",
        target_type="user",
        target_id=user.id,
    )
    return schemas.UserRead.model_validate(user)


@router.post("/refresh", response_model=schemas.TokenPair)
async def refresh(
    body: schemas.RefreshRequest,
    session: AuditedSessionDep,
    redis: RedisDep,
    signer: SignerDep,
    settings: SettingsDep,
    actor: AnonymousActorDep,
) -> schemas.TokenPair:
    """Exchange a refresh token for new tokens; a refresh token already used ends its whole session."""
    started = await service.refresh(
        session=session, redis=redis, signer=signer, settings=settings, actor=actor, refresh_token=body.refresh_token
    )
    return _token_pair(started)


@router.post("/logout", status_code=status.HTTP_204_NO_CONTENT)
async def logout(
    session: AuditedSessionDep,
    redis: RedisDep,
    actor: AnonymousActorDep,
    principal: LenientCaller,
    body: schemas.LogoutRequest | None = None,
) -> Response:
    """End the session of the refresh token or bearer token sent (`all_sessions`: every session)."""
    body = body or schemas.LogoutRequest()
    await service.logout(
        session=session,
        redis=redis,
        actor=actor,
        principal=principal,
        refresh_token=body.refresh_token,
        all_sessions=body.all_sessions,
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/user", response_model=schemas.UserRead)
async def current_user(user: CurrentUser) -> schemas.UserRead:
    """The caller's account."""
    return schemas.UserRead.model_validate(user)


@router.post("/password", response_model=schemas.TokenPair)
async def change_password(
    body: schemas.PasswordChange,
    user: CurrentUser,
    session: AuditedSessionDep,
    redis: RedisDep,
    signer: SignerDep,
    settings: SettingsDep,
    passwords: PasswordsDep,
    actor: ActorDep,
) -> schemas.TokenPair:
    """Change the caller's password; every other session ends, and new tokens are answered."""
    started = await service.change_password(
        session=session,
        redis=redis,
        signer=signer,
        settings=settings,
        passwords=passwords,
        actor=actor,
        user=user,
        current_password=body.current_password,
        new_password=body.new_password,
    )
    return _token_pair(started)


@router.post("/token", response_model=schemas.ServiceTokenResponse)
async def service_token(
    grant_type: Annotated[str, Form()],
    client_id: Annotated[str, Form(max_length=100)],
    client_secret: Annotated[str, Form(max_length=1000)],
    session: AuditedSessionDep,
    signer: SignerDep,
    settings: SettingsDep,
    actor: AnonymousActorDep,
) -> schemas.ServiceTokenResponse:
    """OAuth2 client-credentials grant for the platform's own services (internal audience)."""
    if grant_type != "client_credentials":
        raise BadRequest("Only grant_type=client_credentials is supported.", code="unsupported_grant_type")
    issued = await service.issue_service_token(
        session=session,
        signer=signer,
        settings=settings,
        actor=actor,
        client_id=client_id,
        client_secret=client_secret,
    )
    return schemas.ServiceTokenResponse(access_token=issued.token, expires_in=issued.expires_in)
