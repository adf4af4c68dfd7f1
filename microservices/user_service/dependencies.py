"""FastAPI dependencies of the user service: its keys, the caller (JWT or API token), admin checks, lookups."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

from cryptography.fernet import MultiFernet
from fastapi import Depends, Request
from passlib.context import CryptContext
from sqlalchemy.ext.asyncio import AsyncSession

from microservices.common.auth import Principal, TokenVerifier, bearer_token, get_principal
from microservices.common.db import SessionDep
from microservices.common.errors import AppError, Forbidden, NotFound, Unauthorized
from microservices.user_service import service
from microservices.user_service.config import Settings
from microservices.user_service.models import Group, User
from microservices.user_service.security import API_TOKEN_PREFIX, TokenSigner


async def get_audited_session(session: SessionDep) -> AsyncIterator[AsyncSession]:
    """The request's session, whose changes are committed also when the request fails with `KeepsChanges`."""
    try:
        yield session
    except AppError as exc:
        if isinstance(exc, service.KeepsChanges):
            await session.commit()
        raise


AuditedSessionDep = Annotated[AsyncSession, Depends(get_audited_session, scope="function")]


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_signer(request: Request) -> TokenSigner:
    signer: TokenSigner = request.app.state.signer
    return signer


def get_passwords(request: Request) -> CryptContext:
    passwords: CryptContext = request.app.state.passwords
    return passwords


def get_fernet(request: Request) -> MultiFernet:
    fernet: MultiFernet = request.app.state.fernet
    return fernet


def get_redis(request: Request) -> Any:
    return request.app.state.redis


def get_verifier(request: Request) -> TokenVerifier:
    verifier: TokenVerifier = request.app.state.token_verifier
    return verifier


def get_throttle(request: Request) -> service.LoginThrottle:
    return service.LoginThrottle(redis=request.app.state.redis, settings=request.app.state.settings)


SettingsDep = Annotated[Settings, Depends(get_settings)]
SignerDep = Annotated[TokenSigner, Depends(get_signer)]
PasswordsDep = Annotated[CryptContext, Depends(get_passwords)]
FernetDep = Annotated[MultiFernet, Depends(get_fernet)]
RedisDep = Annotated[Any, Depends(get_redis)]
VerifierDep = Annotated[TokenVerifier, Depends(get_verifier)]
ThrottleDep = Annotated[service.LoginThrottle, Depends(get_throttle)]


async def get_caller(request: Request, session: SessionDep) -> Principal:
    """The verified caller: an access JWT (checked locally) or a personal API token (looked up here)."""
    token = bearer_token(request)
    if token is not None and token.startswith(API_TOKEN_PREFIX):
        resolved = await service.resolve_api_token(session=session, token=token)
        if resolved is None:
            raise Unauthorized("The API token is not valid, expired or revoked.", code="invalid_token")
        principal = service.api_token_principal(*resolved)
        request.state.principal = principal
        return principal
    return await get_principal(request)


async def get_optional_caller(request: Request, session: SessionDep) -> Principal | None:
    """The caller when a bearer token is sent, else None."""
    if bearer_token(request) is None:
        return None
    return await get_caller(request, session)


async def get_lenient_caller(request: Request, session: SessionDep) -> Principal | None:
    """The caller when a valid bearer token is sent; None for none or an expired one (logging out)."""
    try:
        return await get_optional_caller(request, session)
    except Unauthorized:
        return None


Caller = Annotated[Principal, Depends(get_caller)]
OptionalCaller = Annotated[Principal | None, Depends(get_optional_caller)]
LenientCaller = Annotated[Principal | None, Depends(get_lenient_caller)]


async def require_admin(principal: Caller) -> Principal:
    """The caller must be an admin or one of the platform's service accounts."""
    if principal.is_service or principal.is_admin:
        return principal
    raise Forbidden("This needs the admin role.")


async def require_grant_manager(principal: Caller) -> Principal:
    """Service grants are managed by admins and service admins."""
    if principal.is_service or principal.has_role("admin", "service_admin"):
        return principal
    raise Forbidden("This needs the admin or service_admin role.")


async def require_service_account(principal: Caller) -> Principal:
    """Only the platform's own services (client-credentials tokens) may call."""
    if not principal.is_service:
        raise Forbidden("This endpoint is for the platform's own services.")
    return principal


async def require_credential_reader(principal: ServiceCaller, request: Request) -> Principal:
    """Decrypted credentials go to the job processor only, which submits jobs with them."""
    settings: Settings = request.app.state.settings
    if principal.subject.removeprefix("service:") not in settings.credential_reader_clients:
        raise Forbidden("Users' credentials are handed to the job processor only.")
    return principal


AdminCaller = Annotated[Principal, Depends(require_admin)]
GrantManager = Annotated[Principal, Depends(require_grant_manager)]
ServiceCaller = Annotated[Principal, Depends(require_service_account)]
CredentialReader = Annotated[Principal, Depends(require_credential_reader)]


def client_address(request: Request) -> str | None:
    """The client's address (uvicorn resolves X-Forwarded-For from trusted proxies such as the gateway)."""
    return request.client.host if request.client else None


async def get_actor(request: Request, principal: OptionalCaller) -> service.Actor:
    """Who acts, for the audit log."""
    return service.Actor.of(principal, client_address(request))


def get_anonymous_actor(request: Request) -> service.Actor:
    """An anonymous caller (login, registration), whatever Authorization header he may also send."""
    return service.Actor.of(None, client_address(request))


ActorDep = Annotated[service.Actor, Depends(get_actor)]
AnonymousActorDep = Annotated[service.Actor, Depends(get_anonymous_actor)]


async def get_current_user(principal: Caller, session: SessionDep) -> User:
    """The caller's own active account."""
    return await service.current_user(session=session, principal=principal)


CurrentUser = Annotated[User, Depends(get_current_user)]


async def visible_user(user_id: int, principal: Caller, session: SessionDep) -> User:
    """The user `user_id` when the caller is that user, an admin or a service; 404 otherwise."""
    if not (principal.is_service or principal.is_admin or principal.user_id == user_id):
        raise NotFound(f"There is no user {user_id}.", code="user_not_found")
    return await service.require_user(session=session, user_id=user_id)


async def admin_target_user(user_id: int, principal: AdminCaller, session: SessionDep) -> User:
    """The user an admin acts on."""
    return await service.require_user(session=session, user_id=user_id)


async def grant_target_user(user_id: int, principal: GrantManager, session: SessionDep) -> User:
    """The user whose service grants are being changed."""
    return await service.require_user(session=session, user_id=user_id)


async def valid_group(group_id: int, principal: GrantManager, session: SessionDep) -> Group:
    """A group, for admins and service admins."""
    return await service.require_group(session=session, group_id=group_id)


async def permissions_user(user_id: int, principal: Caller, session: SessionDep) -> User:
    """The user whose permissions are read: by himself, admins, service admins and services; 404 otherwise."""
    if not (principal.is_service or principal.has_role("admin", "service_admin") or principal.user_id == user_id):
        raise NotFound(f"There is no user {user_id}.", code="user_not_found")
    return await service.require_user(session=session, user_id=user_id)


VisibleUser = Annotated[User, Depends(visible_user)]
PermissionsUser = Annotated[User, Depends(permissions_user)]
AdminTargetUser = Annotated[User, Depends(admin_target_user)]
GrantTargetUser = Annotated[User, Depends(grant_target_user)]
ValidGroup = Annotated[Group, Depends(valid_group)]
