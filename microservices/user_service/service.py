"""Domain logic of the user service: accounts, sessions, tokens, groups, permissions, credentials, audit.

Functions here only `flush()`; the request's session dependency commits. Failures that must leave a trace (a
refused login, a reused refresh token) raise errors marked `KeepsChanges`, which that dependency commits first.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography.fernet import MultiFernet
from passlib.context import CryptContext
from sqlalchemy import ColumnElement, Select, delete, func, or_, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from microservices.common import service_auth
from microservices.common.auth import REVOKED_BEFORE_KEY, Principal, TokenVerifier
from microservices.common.errors import (
    AppError,
    BadRequest,
    Conflict,
    Forbidden,
    NotFound,
    RateLimited,
    Unauthorized,
)
from microservices.common.events import USER_ACTION_LOGGED, emit
from microservices.common.pagination import PageParams, paginate
from microservices.user_service import schemas
from microservices.user_service.config import SERVICE_CLIENT_IDS, Settings
from microservices.user_service.models import (
    ApiToken,
    AuditEntry,
    Group,
    GroupMember,
    RefreshToken,
    ServiceCredential,
    ServicePermission,
    User,
)
from microservices.user_service.security import (
    API_TOKEN_PREFIX,
    IssuedToken,
    TokenSigner,
    decrypt,
    hash_secret,
    new_api_token,
    new_refresh_token,
)

logger = logging.getLogger(__name__)

# Revocation marks outlive every access token they may concern (15 minutes by default).
REVOCATION_TTL_S = 3600
COMMON_PASSWORDS = frozenset(
    {"password123", "password1234", "qwertyuiop", "1234567890a", "letmein123", "iloveyou12", "administrator"}
)


class KeepsChanges:
    """Mixin for errors after which the request's changes (an audit entry, a revocation) are committed anyway."""


class AuthFailed(KeepsChanges, Unauthorized):
    pass


class AccountInactive(KeepsChanges, Forbidden):
    code = "account_inactive"


class LoginThrottled(KeepsChanges, RateLimited):
    pass


class WeakPassword(BadRequest):
    code = "weak_password"


@dataclass(frozen=True)
class Actor:
    """Who does something, for the audit log: a user, a service account, or an anonymous caller."""

    user_id: int | None
    name: str
    ip_address: str | None = None

    @classmethod
    def of(cls, principal: Principal | None, ip_address: str | None) -> Actor:
        if principal is None:
            return cls(user_id=None, name="anonymous", ip_address=ip_address)
        name = principal.subject if principal.is_service else principal.username
        return cls(user_id=principal.user_id, name=name, ip_address=ip_address)


@dataclass(frozen=True)
class IssuedSession:
    """What a login or a refresh gives: the user, an access token and a refresh token."""

    user: User
    access: IssuedToken
    refresh_token: str


def _now() -> datetime:
    return datetime.now(UTC)


# --- audit ---------------------------------------------------------------------------------------------------


async def record_audit(
    *,
    session: AsyncSession,
    actor: Actor,
    action: str,
    target_type: str | None = None,
    target_id: object | None = None,
    success: bool = True,
    details: dict[str, Any] | None = None,
) -> AuditEntry:
    """Add one entry to the audit log (never with a secret in `details`)."""
    entry = AuditEntry(
        action=action,
        user_id=actor.user_id,
        actor=actor.name[:160],
        target_type=target_type,
        target_id=None if target_id is None else str(target_id),
        ip_address=actor.ip_address,
        success=success,
        details=details or {},
    )
    session.add(entry)
    await session.flush()
    await emit(
        session,
        topic=USER_ACTION_LOGGED,
        payload={
            "audit_id": entry.id,
            "user_id": entry.user_id,
            "action": action,
            "actor": entry.actor,
            "target_type": target_type,
            "target_id": entry.target_id,
            "success": success,
            "details": entry.details,
        },
        producer="user_service",
    )
    return entry


async def list_audit(
    *,
    session: AsyncSession,
    params: PageParams,
    user_id: int | None = None,
    action: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    success: bool | None = None,
) -> tuple[list[AuditEntry], int]:
    """Audit entries, newest first; `user_id` matches the actor or the user acted upon."""
    statement = select(AuditEntry).order_by(AuditEntry.created_at.desc(), AuditEntry.id.desc())
    if user_id is not None:
        statement = statement.where(
            or_(
                AuditEntry.user_id == user_id,
                (AuditEntry.target_type == "user") & (AuditEntry.target_id == str(user_id)),
            )
        )
    if action:
        # "auth." selects every auth action; anything else is matched exactly.
        statement = statement.where(
            AuditEntry.action.startswith(action, autoescape=True)
            if action.endswith(".")
            else AuditEntry.action == action
        )
    if since is not None:
        statement = statement.where(AuditEntry.created_at >= since)
    if until is not None:
        statement = statement.where(AuditEntry.created_at < until)
    if success is not None:
        statement = statement.where(AuditEntry.success.is_(success))
    return await paginate(session, statement, params)


# --- passwords ---------------------------------------------------------------------------------------------


def check_password_policy(*, password: str, username: str, email: str | None = None) -> None:
    """Raise WeakPassword with a sentence the user can act on."""
    if len(password) < 10:
        raise WeakPassword("The password must be at least 10 characters long.")
    if password.isdigit():
        raise WeakPassword("The password must not be only digits.")
    lowered = password.lower()
    if lowered == username.lower() or (email and lowered in (email.lower(), email.lower().split("@")[0])):
        raise WeakPassword("The password must not be the username or the e-mail address.")
    if len(set(password)) < 4 or lowered in COMMON_PASSWORDS:
        raise WeakPassword("The password is too easy to guess; choose a longer, less common one.")


async def hash_password(*, passwords: CryptContext, password: str) -> str:
    """The password's Argon2id hash, computed off the event loop."""
    return await asyncio.to_thread(passwords.hash, password)


async def verify_password(*, passwords: CryptContext, password: str, password_hash: str) -> bool:
    """True when `password` matches; never raises on a malformed hash."""
    try:
        return await asyncio.to_thread(passwords.verify, password, password_hash)
    except (ValueError, TypeError):
        return False


# --- revocation and token issue ------------------------------------------------------------------------------


async def revoke_access_tokens(*, redis: Any, subject: str) -> None:
    """Refuse, in every service, each access token of `subject` issued up to now.

    The mark is one second ahead, so that a token issued within the current second is caught too; tokens
    issued afterwards carry that second as their `iat` (see `_issue_time`).
    """
    try:
        await redis.set(REVOKED_BEFORE_KEY.format(subject=subject), int(time.time()) + 1, ex=REVOCATION_TTL_S)
    except Exception as exc:
        logger.error("could not record the revocation of %s's tokens in Redis: %s", subject, exc)


async def _issue_time(*, redis: Any, subject: str) -> int:
    now = int(time.time())
    try:
        mark = await redis.get(REVOKED_BEFORE_KEY.format(subject=subject))
    except Exception:
        return now
    return max(now, int(mark)) if mark is not None else now


async def issue_access_token(
    *, redis: Any, signer: TokenSigner, settings: Settings, user: User, session_id: str | None = None
) -> IssuedToken:
    """A user's RS256 access token."""
    subject = str(user.id)
    claims: dict[str, Any] = {
        "sub": subject,
        "username": user.username,
        "roles": list(user.roles),
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
    }
    if session_id is not None:
        claims["sid"] = session_id
    issued_at = await _issue_time(redis=redis, subject=subject)
    return signer.sign(claims, ttl_s=settings.access_token_ttl_s, issued_at=issued_at)


async def _start_session(
    *,
    session: AsyncSession,
    redis: Any,
    signer: TokenSigner,
    settings: Settings,
    user: User,
    family_id: str | None = None,
) -> IssuedSession:
    family = family_id or uuid.uuid4().hex
    refresh = new_refresh_token()
    session.add(
        RefreshToken(
            user_id=user.id,
            family_id=family,
            token_hash=hash_secret(refresh),
            expires_at=_now() + timedelta(seconds=settings.refresh_token_ttl_s),
        )
    )
    await session.flush()
    access = await issue_access_token(redis=redis, signer=signer, settings=settings, user=user, session_id=family)
    return IssuedSession(user=user, access=access, refresh_token=refresh)


async def _revoke_refresh_tokens(*, session: AsyncSession, user_id: int, family_id: str | None = None) -> int:
    statement = update(RefreshToken).where(RefreshToken.user_id == user_id, RefreshToken.revoked_at.is_(None))
    if family_id is not None:
        statement = statement.where(RefreshToken.family_id == family_id)
    result = await session.execute(statement.values(revoked_at=func.now()))
    return int(getattr(result, "rowcount", 0) or 0)


# --- login throttling ------------------------------------------------------------------------------------------


class LoginThrottle:
    """Counts failed logins per account and per client address in Redis, within a sliding-from-first window."""

    def __init__(self, *, redis: Any, settings: Settings) -> None:
        self.redis = redis
        self.window_s = settings.login_failure_window_s
        self.limits = {
            "account": settings.login_max_failures_per_account,
            "address": settings.login_max_failures_per_address,
        }

    @staticmethod
    def _keys(account: str, address: str | None) -> dict[str, str]:
        keys = {"account": f"login:failures:account:{account.lower()}"}
        if address:
            keys["address"] = f"login:failures:address:{address}"
        return keys

    async def retry_after(self, *, account: str, address: str | None) -> tuple[str, int] | None:
        """(what is throttled, seconds to wait) when either counter is at its limit; None otherwise."""
        keys = self._keys(account, address)
        try:
            counts = await self.redis.mget(list(keys.values()))
            for (kind, key), count in zip(keys.items(), counts, strict=True):
                if count is not None and int(count) >= self.limits[kind]:
                    ttl = await self.redis.ttl(key)
                    return kind, max(1, int(ttl) if ttl and ttl > 0 else self.window_s)
        except Exception as exc:  # Redis away: logins go on, unthrottled, rather than nobody logging in
            logger.warning("login throttle skipped, Redis unavailable: %s", exc)
        return None

    async def record_failure(self, *, account: str, address: str | None) -> None:
        """Count one failed login against the account and the address."""
        try:
            async with self.redis.pipeline(transaction=True) as pipe:
                for key in self._keys(account, address).values():
                    pipe.incr(key)
                    pipe.expire(key, self.window_s, nx=True)
                await pipe.execute()
        except Exception as exc:
            logger.warning("login failure not counted, Redis unavailable: %s", exc)

    async def reset(self, *, account: str) -> None:
        """Forget an account's failures after a successful login."""
        try:
            await self.redis.delete(self._keys(account, None)["account"])
        except Exception as exc:
            logger.warning("login failures not reset, Redis unavailable: %s", exc)


# --- users -----------------------------------------------------------------------------------------------------


async def get_user(*, session: AsyncSession, user_id: int) -> User | None:
    """The user with that id, if any."""
    return await session.get(User, user_id)


async def require_user(*, session: AsyncSession, user_id: int) -> User:
    """The user with that id, or 404."""
    user = await get_user(session=session, user_id=user_id)
    if user is None:
        raise NotFound(f"There is no user {user_id}.", code="user_not_found")
    return user


async def find_user_by_login(*, session: AsyncSession, login: str) -> User | None:
    """The user whose e-mail address (when `login` contains '@') or else username is `login`, case-insensitively."""
    lowered = login.strip().lower()
    column = User.email if "@" in lowered else User.username
    return (await session.scalars(select(User).where(func.lower(column) == lowered).limit(1))).first()


async def current_user(*, session: AsyncSession, principal: Principal) -> User:
    """The active account behind a user's token; service accounts have none."""
    if principal.user_id is None:
        raise Forbidden("This endpoint is for users, not service accounts.", code="not_a_user")
    user = await get_user(session=session, user_id=principal.user_id)
    if user is None or not user.is_active:
        raise Unauthorized("The account of this token no longer exists or is deactivated.", code="account_inactive")
    return user


async def _ensure_unique(
    *, session: AsyncSession, username: str | None, email: str | None, exclude_id: int = 0
) -> None:
    if username is not None:
        taken = await session.scalar(
            select(User.id).where(func.lower(User.username) == username.lower(), User.id != exclude_id)
        )
        if taken is not None:
            raise Conflict(f"The username {username!r} is taken.", code="username_taken")
    if email is not None:
        taken = await session.scalar(
            select(User.id).where(func.lower(User.email) == email.lower(), User.id != exclude_id)
        )
        if taken is not None:
            raise Conflict("An account with that e-mail address exists.", code="email_taken")


async def create_user(
    *,
    session: AsyncSession,
    passwords: CryptContext,
    user_in: schemas.RegisterRequest,
    roles: Sequence[str] = ("researcher",),
    is_active: bool = True,
) -> User:
    """A new account, after the password policy and the uniqueness checks."""
    check_password_policy(password=user_in.password, username=user_in.username, email=user_in.email)
    await _ensure_unique(session=session, username=user_in.username, email=user_in.email)
    user = User(
        username=user_in.username,
        email=user_in.email,
        first_name=user_in.first_name,
        last_name=user_in.last_name,
        password_hash=await hash_password(passwords=passwords, password=user_in.password),
        roles=sorted(set(roles)),
        is_active=is_active,
    )
    session.add(user)
    try:
        await session.flush()
    except IntegrityError as exc:  # a concurrent registration won the race
        raise Conflict("The username or e-mail address is taken.", code="username_taken") from exc
    await session.refresh(user)
    return user


async def list_users(
    *,
    session: AsyncSession,
    params: PageParams,
    search: str | None = None,
    role: str | None = None,
    is_active: bool | None = None,
) -> tuple[list[User], int]:
    """Users by id, filtered by a search over names and e-mail, a role, or activity."""
    statement = select(User).order_by(User.id)
    if search:
        statement = statement.where(
            or_(
                *(
                    func.lower(column).contains(search.strip().lower(), autoescape=True)
                    for column in (User.username, User.email, User.first_name, User.last_name)
                )
            )
        )
    if role:
        statement = statement.where(User.roles.contains([role]))
    if is_active is not None:
        statement = statement.where(User.is_active.is_(is_active))
    return await paginate(session, statement, params)


async def update_user(
    *,
    session: AsyncSession,
    redis: Any,
    actor: Actor,
    user: User,
    changes: schemas.UserUpdate,
) -> User:
    """Apply an admin's changes; a change of roles or deactivation takes effect on tokens at once."""
    fields = changes.model_dump(exclude_unset=True, exclude_none=True)
    if user.id == actor.user_id and (
        fields.get("is_active") is False or ("roles" in fields and "admin" not in fields["roles"])
    ):
        raise Conflict("An admin cannot deactivate himself or take away his own admin role.", code="cannot_modify_self")
    if "email" in fields:
        await _ensure_unique(session=session, username=None, email=fields["email"], exclude_id=user.id)
    roles_changed = "roles" in fields and sorted(set(fields["roles"])) != sorted(user.roles)
    deactivated = fields.get("is_active") is False and user.is_active
    for name, value in fields.items():
        setattr(user, name, sorted(set(value)) if name == "roles" else value)
    if deactivated:
        await _revoke_refresh_tokens(session=session, user_id=user.id)
    if roles_changed or deactivated:
        await revoke_access_tokens(redis=redis, subject=str(user.id))
    await session.flush()
    await record_audit(
        session=session,
        actor=actor,
        action="user.update",
        target_type="user",
        target_id=user.id,
        details={"fields": sorted(fields)},
    )
    await session.refresh(user)
    return user


async def set_user_active(*, session: AsyncSession, redis: Any, actor: Actor, user: User, active: bool) -> User:
    """Deactivate (every token stops working at once) or reactivate an account."""
    if user.id == actor.user_id and not active:
        raise Conflict("An admin cannot deactivate himself.", code="cannot_modify_self")
    user.is_active = active
    if not active:
        await _revoke_refresh_tokens(session=session, user_id=user.id)
        await revoke_access_tokens(redis=redis, subject=str(user.id))
    await session.flush()
    await record_audit(
        session=session,
        actor=actor,
        action="user.deactivate" if not active else "user.activate",
        target_type="user",
        target_id=user.id,
    )
    await session.refresh(user)
    return user


async def delete_user(*, session: AsyncSession, redis: Any, actor: Actor, user: User) -> None:
    """Delete an account and everything it owns; its audit entries stay."""
    if user.id == actor.user_id:
        raise Conflict("An admin cannot delete himself.", code="cannot_modify_self")
    await revoke_access_tokens(redis=redis, subject=str(user.id))
    user_id, username = user.id, user.username
    await session.delete(user)
    await session.flush()
    await record_audit(
        session=session,
        actor=actor,
        action="user.delete",
        target_type="user",
        target_id=user_id,
        details={"username": username},
    )


async def update_profile(*, session: AsyncSession, actor: Actor, user: User, changes: schemas.ProfileUpdate) -> User:
    """A user's changes to his own name and e-mail address."""
    fields = changes.model_dump(exclude_unset=True, exclude_none=True)
    if "email" in fields:
        await _ensure_unique(session=session, username=None, email=fields["email"], exclude_id=user.id)
    for name, value in fields.items():
        setattr(user, name, value)
    await session.flush()
    await record_audit(
        session=session,
        actor=actor,
        action="user.profile_update",
        target_type="user",
        target_id=user.id,
        details={"fields": sorted(fields)},
    )
    await session.refresh(user)
    return user


async def ensure_bootstrap_admin(*, session: AsyncSession, settings: Settings, passwords: CryptContext) -> User | None:
    """Create the first admin from BOOTSTRAP_ADMIN_* when no admin exists; the new admin, or None."""
    username, email = settings.bootstrap_admin_username, settings.bootstrap_admin_email
    password = settings.bootstrap_admin_password.get_secret_value() if settings.bootstrap_admin_password else ""
    if not (username and email and password):
        return None
    # Several workers may start at once: one of them creates the account.
    await session.execute(text("SELECT pg_advisory_xact_lock(8001)"))
    if await session.scalar(select(User.id).where(User.roles.contains(["admin"])).limit(1)) is not None:
        return None
    try:
        check_password_policy(password=password, username=username, email=email)
    except WeakPassword as exc:
        if settings.environment == "production":
            raise
        logger.warning("the bootstrap admin's password breaks the policy: %s", exc.message)
    existing = await find_user_by_login(session=session, login=username)
    if existing is not None:
        existing.roles = sorted({*existing.roles, "admin"})
        existing.is_active = True
        await session.flush()
        return existing
    user = User(
        username=username,
        email=email.lower(),
        password_hash=await hash_password(passwords=passwords, password=password),
        roles=["admin"],
    )
    session.add(user)
    await session.flush()
    await record_audit(
        session=session,
        actor=Actor(user_id=None, name="bootstrap"),
        action="user.bootstrap_admin",
        target_type="user",
        target_id=user.id,
    )
    logger.info("created the bootstrap admin %r", username)
    return user


# --- authentication ------------------------------------------------------------------------------------------


# Verified against when the account does not exist, so that timing does not tell which usernames exist.
_DUMMY_HASH_CACHE: dict[str, str] = {}


async def _dummy_hash(passwords: CryptContext) -> str:
    key = str(id(passwords))
    if key not in _DUMMY_HASH_CACHE:
        _DUMMY_HASH_CACHE[key] = await hash_password(passwords=passwords, password=uuid.uuid4().hex)
    return _DUMMY_HASH_CACHE[key]


async def login(
    *,
    session: AsyncSession,
    redis: Any,
    signer: TokenSigner,
    settings: Settings,
    passwords: CryptContext,
    throttle: LoginThrottle,
    actor: Actor,
    login_name: str,
    password: str,
) -> IssuedSession:
    """Check the credentials (throttled per account and address) and start a session."""
    user = await find_user_by_login(session=session, login=login_name)
    account = f"user:{user.id}" if user is not None else f"name:{login_name.strip().lower()}"
    throttled = await throttle.retry_after(account=account, address=actor.ip_address)
    if throttled is not None:
        kind, retry_after = throttled
        await record_audit(
            session=session,
            actor=actor,
            action="auth.login_throttled",
            target_type="user" if user else None,
            target_id=user.id if user else None,
            success=False,
            details={"username": login_name[:150], "throttled": kind},
        )
        raise LoginThrottled(
            f"Too many failed logins for this {kind}; try again in {retry_after} s.", retry_after_s=retry_after
        )
    password_hash = user.password_hash if user is not None else await _dummy_hash(passwords)
    valid = await verify_password(passwords=passwords, password=password, password_hash=password_hash)
    if user is None or not valid:
        await throttle.record_failure(account=account, address=actor.ip_address)
        await record_audit(
            session=session,
            actor=actor,
            action="auth.login_failed",
            target_type="user" if user else None,
            target_id=user.id if user else None,
            success=False,
            details={"username": login_name[:150], "reason": "unknown_user" if user is None else "wrong_password"},
        )
        raise AuthFailed("The username or password is wrong.", code="invalid_credentials")
    if not user.is_active:
        await record_audit(
            session=session,
            actor=actor,
            action="auth.login_failed",
            target_type="user",
            target_id=user.id,
            success=False,
            details={"username": login_name[:150], "reason": "inactive"},
        )
        raise AccountInactive("This account has been deactivated; ask an administrator.")
    await throttle.reset(account=account)
    if passwords.needs_update(user.password_hash):
        user.password_hash = await hash_password(passwords=passwords, password=password)
    user.last_login_at = _now()
    # Expired refresh tokens prove nothing any more (reuse detection only needs live ones): drop the user's.
    await session.execute(delete(RefreshToken).where(RefreshToken.user_id == user.id, RefreshToken.expires_at < _now()))
    started = await _start_session(session=session, redis=redis, signer=signer, settings=settings, user=user)
    await record_audit(
        session=session,
        actor=Actor(user_id=user.id, name=user.username, ip_address=actor.ip_address),
        action="auth.login",
        target_type="user",
        target_id=user.id,
    )
    return started


async def refresh(
    *, session: AsyncSession, redis: Any, signer: TokenSigner, settings: Settings, actor: Actor, refresh_token: str
) -> IssuedSession:
    """Rotate a refresh token; presenting one already used revokes its whole family."""
    row = await session.scalar(
        select(RefreshToken).where(RefreshToken.token_hash == hash_secret(refresh_token)).with_for_update()
    )
    if row is None:
        raise AuthFailed("The refresh token is not valid.", code="invalid_refresh_token")
    if row.used_at is not None:
        revoked = await _revoke_refresh_tokens(session=session, user_id=row.user_id, family_id=row.family_id)
        await revoke_access_tokens(redis=redis, subject=str(row.user_id))
        await record_audit(
            session=session,
            actor=Actor(user_id=row.user_id, name=f"user:{row.user_id}", ip_address=actor.ip_address),
            action="auth.refresh_reuse",
            target_type="user",
            target_id=row.user_id,
            success=False,
            details={"family_revoked": revoked},
        )
        raise AuthFailed(
            "This refresh token was already used; the session has been ended for safety.", code="refresh_token_reused"
        )
    if row.revoked_at is not None:
        raise AuthFailed("The refresh token has been revoked.", code="refresh_token_revoked")
    if row.expires_at <= _now():
        raise AuthFailed("The refresh token has expired; log in again.", code="refresh_token_expired")
    user = await get_user(session=session, user_id=row.user_id)
    if user is None or not user.is_active:
        raise AuthFailed("The account is deactivated.", code="account_inactive")
    row.used_at = _now()
    return await _start_session(
        session=session, redis=redis, signer=signer, settings=settings, user=user, family_id=row.family_id
    )


async def logout(
    *,
    session: AsyncSession,
    redis: Any,
    actor: Actor,
    principal: Principal | None,
    refresh_token: str | None,
    all_sessions: bool,
) -> None:
    """End the session of the refresh token and/or of the access token; all of them on request.

    The caller's current access tokens stop working at once; other sessions get new ones with their refresh token.
    """
    user_id: int | None = principal.user_id if principal is not None else None
    families: set[str] = set()
    if principal is not None and isinstance(principal.claims.get("sid"), str):
        families.add(principal.claims["sid"])
    if refresh_token:
        row = await session.scalar(select(RefreshToken).where(RefreshToken.token_hash == hash_secret(refresh_token)))
        if row is not None and user_id in (None, row.user_id):
            user_id = row.user_id
            families.add(row.family_id)
    if user_id is None:
        if principal is None and not refresh_token:
            raise Unauthorized("Send the refresh token, or a bearer token, of the session to end.")
        return
    if all_sessions and principal is not None:
        await _revoke_refresh_tokens(session=session, user_id=user_id)
    for family in families:
        await _revoke_refresh_tokens(session=session, user_id=user_id, family_id=family)
    await revoke_access_tokens(redis=redis, subject=str(user_id))
    await record_audit(
        session=session,
        actor=Actor(
            user_id=user_id, name=principal.username if principal else f"user:{user_id}", ip_address=actor.ip_address
        ),
        action="auth.logout",
        target_type="user",
        target_id=user_id,
        details={"all_sessions": all_sessions and principal is not None},
    )


async def change_password(
    *,
    session: AsyncSession,
    redis: Any,
    signer: TokenSigner,
    settings: Settings,
    passwords: CryptContext,
    actor: Actor,
    user: User,
    current_password: str,
    new_password: str,
) -> IssuedSession:
    """Change the password, end every other session and token, and start a fresh session."""
    if not await verify_password(passwords=passwords, password=current_password, password_hash=user.password_hash):
        await record_audit(
            session=session,
            actor=actor,
            action="auth.password_change_failed",
            target_type="user",
            target_id=user.id,
            success=False,
        )
        raise BadRequest("The current password is wrong.", code="invalid_current_password")
    if new_password == current_password:
        raise WeakPassword("The new password must differ from the current one.")
    check_password_policy(password=new_password, username=user.username, email=user.email)
    user.password_hash = await hash_password(passwords=passwords, password=new_password)
    user.password_changed_at = _now()
    await _revoke_refresh_tokens(session=session, user_id=user.id)
    await revoke_access_tokens(redis=redis, subject=str(user.id))
    await record_audit(
        session=session, actor=actor, action="auth.password_change", target_type="user", target_id=user.id
    )
    return await _start_session(session=session, redis=redis, signer=signer, settings=settings, user=user)


def client_secret_for(*, settings: Settings, client_id: str) -> str | None:
    """The secret a service account must present, or None when it is unknown or has none configured."""
    explicit = settings.client_secret_overrides().get(client_id)
    if explicit is not None:
        return explicit
    if client_id not in SERVICE_CLIENT_IDS or settings.internal_client_secret is None:
        return None
    if settings.environment == "production" and client_id in settings.credential_reader_clients:
        return None
    shared = settings.internal_client_secret.get_secret_value()
    return service_auth.client_secret_for(shared, client_id) if shared else None


async def issue_service_token(
    *, session: AsyncSession, signer: TokenSigner, settings: Settings, actor: Actor, client_id: str, client_secret: str
) -> IssuedToken:
    """The OAuth2 client-credentials grant: an internal-audience token for one of the platform's components."""
    expected = client_secret_for(settings=settings, client_id=client_id)
    if expected is None or not hmac.compare_digest(expected.encode(), client_secret.encode()):
        await record_audit(
            session=session,
            actor=actor,
            action="auth.service_token_failed",
            target_type="client",
            target_id=client_id[:64],
            success=False,
        )
        raise AuthFailed("The client id or secret is wrong.", code="invalid_client")
    claims = {
        "sub": f"service:{client_id}",
        "username": client_id,
        "roles": [],
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_internal_audience,
    }
    return signer.sign(claims, ttl_s=settings.service_token_ttl_s)


# --- personal API tokens ---------------------------------------------------------------------------------------


async def create_api_token(
    *, session: AsyncSession, actor: Actor, user: User, token_in: schemas.ApiTokenCreate
) -> tuple[ApiToken, str]:
    """A new API token and its secret, which is never stored and never shown again."""
    secret = new_api_token()
    expires_at = _now() + timedelta(days=token_in.expires_in_days) if token_in.expires_in_days else None
    token = ApiToken(
        user_id=user.id,
        name=token_in.name,
        token_hash=hash_secret(secret),
        token_prefix=secret[: len(API_TOKEN_PREFIX) + 8],
        expires_at=expires_at,
    )
    session.add(token)
    await session.flush()
    await session.refresh(token)
    await record_audit(
        session=session,
        actor=actor,
        action="token.create",
        target_type="api_token",
        target_id=token.id,
        details={"name": token.name},
    )
    return token, secret


async def list_api_tokens(*, session: AsyncSession, user_id: int, params: PageParams) -> tuple[list[ApiToken], int]:
    """The user's API tokens, newest first, revoked ones included."""
    statement: Select[Any] = (
        select(ApiToken).where(ApiToken.user_id == user_id).order_by(ApiToken.created_at.desc(), ApiToken.id.desc())
    )
    return await paginate(session, statement, params)


async def revoke_api_token(*, session: AsyncSession, actor: Actor, principal: Principal, token_id: int) -> None:
    """Revoke one of the caller's tokens (an admin may revoke anyone's); 404 for tokens the caller cannot see."""
    token = await session.get(ApiToken, token_id)
    if token is None or (token.user_id != principal.user_id and not principal.is_admin):
        raise NotFound(f"There is no API token {token_id}.", code="token_not_found")
    if token.revoked_at is None:
        token.revoked_at = _now()
        await session.flush()
        await record_audit(
            session=session,
            actor=actor,
            action="token.revoke",
            target_type="api_token",
            target_id=token.id,
            details={"owner_id": token.user_id},
        )


async def resolve_api_token(*, session: AsyncSession, token: str) -> tuple[ApiToken, User] | None:
    """The live API token and its active owner for a presented secret, its last use recorded; else None."""
    if not token.startswith(API_TOKEN_PREFIX):
        return None
    row = (
        await session.execute(
            select(ApiToken, User)
            .join(User, User.id == ApiToken.user_id)
            .where(ApiToken.token_hash == hash_secret(token))
        )
    ).first()
    if row is None:
        return None
    api_token, user = row
    now = _now()
    if api_token.revoked_at is not None or not user.is_active:
        return None
    if api_token.expires_at is not None and api_token.expires_at <= now:
        return None
    api_token.last_used_at = now
    await session.flush()
    return api_token, user


def api_token_principal(api_token: ApiToken, user: User) -> Principal:
    """The principal an API token stands for: its owner, with his current roles."""
    return Principal(
        subject=str(user.id),
        username=user.username,
        roles=frozenset(user.roles),
        token_id=f"api:{api_token.id}",
        claims={"sub": str(user.id), "api_token_id": api_token.id},
    )


async def introspect(*, session: AsyncSession, verifier: TokenVerifier, token: str) -> schemas.IntrospectResponse:
    """RFC 7662-style introspection of an API token (or an access JWT) for the gateway."""
    if token.startswith(API_TOKEN_PREFIX):
        resolved = await resolve_api_token(session=session, token=token)
        if resolved is None:
            return schemas.IntrospectResponse(active=False)
        api_token, user = resolved
        return schemas.IntrospectResponse(
            active=True,
            sub=str(user.id),
            username=user.username,
            roles=list(user.roles),
            token_id=f"api:{api_token.id}",
            exp=int(api_token.expires_at.timestamp()) if api_token.expires_at else None,
        )
    if token.count(".") != 2:
        return schemas.IntrospectResponse(active=False)
    try:
        principal = await verifier.verify(token)
    except AppError:
        return schemas.IntrospectResponse(active=False)
    return schemas.IntrospectResponse(
        active=True,
        sub=principal.subject,
        username=principal.username,
        roles=sorted(principal.roles),
        token_id=principal.token_id,
        exp=int(principal.claims["exp"]),
    )


# --- groups and service permissions ------------------------------------------------------------------------------


async def require_group(*, session: AsyncSession, group_id: int) -> Group:
    """The group with that id, or 404."""
    group = await session.get(Group, group_id)
    if group is None:
        raise NotFound(f"There is no group {group_id}.", code="group_not_found")
    return group


async def _member_counts(*, session: AsyncSession, group_ids: Sequence[int]) -> dict[int, int]:
    if not group_ids:
        return {}
    rows = await session.execute(
        select(GroupMember.group_id, func.count())
        .where(GroupMember.group_id.in_(group_ids))
        .group_by(GroupMember.group_id)
    )
    return {group_id: count for group_id, count in rows}


async def list_groups(
    *, session: AsyncSession, params: PageParams, search: str | None = None
) -> tuple[list[schemas.GroupRead], int]:
    """Groups by name, with their member counts."""
    statement = select(Group).order_by(Group.name)
    if search:
        statement = statement.where(func.lower(Group.name).contains(search.strip().lower(), autoescape=True))
    groups, total = await paginate(session, statement, params)
    counts = await _member_counts(session=session, group_ids=[g.id for g in groups])
    items = [
        schemas.GroupRead.model_validate(g).model_copy(update={"member_count": counts.get(g.id, 0)}) for g in groups
    ]
    return items, total


async def group_detail(*, session: AsyncSession, group: Group) -> schemas.GroupDetail:
    """A group with its members and its service grants."""
    members = (
        await session.scalars(
            select(User)
            .join(GroupMember, GroupMember.user_id == User.id)
            .where(GroupMember.group_id == group.id)
            .order_by(User.id)
        )
    ).all()
    grants = (
        await session.scalars(
            select(ServicePermission)
            .where(ServicePermission.group_id == group.id)
            .order_by(ServicePermission.service_id)
        )
    ).all()
    return schemas.GroupDetail(
        id=group.id,
        name=group.name,
        description=group.description,
        created_at=group.created_at,
        member_count=len(members),
        members=[schemas.UserSummary.model_validate(m) for m in members],
        permissions=[schemas.GrantRead.model_validate(g) for g in grants],
    )


async def _ensure_group_name_free(*, session: AsyncSession, name: str, exclude_id: int = 0) -> None:
    taken = await session.scalar(select(Group.id).where(func.lower(Group.name) == name.lower(), Group.id != exclude_id))
    if taken is not None:
        raise Conflict(f"A group named {name!r} exists.", code="group_exists")


async def create_group(*, session: AsyncSession, actor: Actor, group_in: schemas.GroupCreate) -> Group:
    """A new, empty group."""
    await _ensure_group_name_free(session=session, name=group_in.name)
    group = Group(name=group_in.name, description=group_in.description)
    session.add(group)
    await session.flush()
    await session.refresh(group)
    await record_audit(
        session=session,
        actor=actor,
        action="group.create",
        target_type="group",
        target_id=group.id,
        details={"name": group.name},
    )
    return group


async def update_group(*, session: AsyncSession, actor: Actor, group: Group, changes: schemas.GroupUpdate) -> Group:
    """Rename a group or change its description."""
    fields = changes.model_dump(exclude_unset=True, exclude_none=True)
    if "name" in fields:
        await _ensure_group_name_free(session=session, name=fields["name"], exclude_id=group.id)
    for name, value in fields.items():
        setattr(group, name, value)
    await session.flush()
    await record_audit(
        session=session,
        actor=actor,
        action="group.update",
        target_type="group",
        target_id=group.id,
        details={"fields": sorted(fields)},
    )
    return group


async def delete_group(*, session: AsyncSession, actor: Actor, group: Group) -> None:
    """Delete a group, its memberships and its grants."""
    group_id, name = group.id, group.name
    await session.delete(group)
    await session.flush()
    await record_audit(
        session=session,
        actor=actor,
        action="group.delete",
        target_type="group",
        target_id=group_id,
        details={"name": name},
    )


async def add_member(*, session: AsyncSession, actor: Actor, group: Group, user: User) -> None:
    """Put a user in a group (no-op when he is in it)."""
    if await session.get(GroupMember, (group.id, user.id)) is not None:
        return
    session.add(GroupMember(group_id=group.id, user_id=user.id))
    await session.flush()
    await record_audit(
        session=session,
        actor=actor,
        action="group.member_add",
        target_type="group",
        target_id=group.id,
        details={"user_id": user.id},
    )


async def remove_member(*, session: AsyncSession, actor: Actor, group: Group, user_id: int) -> None:
    """Take a user out of a group; 404 when he is not in it."""
    result = await session.execute(
        delete(GroupMember).where(GroupMember.group_id == group.id, GroupMember.user_id == user_id)
    )
    if not getattr(result, "rowcount", 0):
        raise NotFound(f"User {user_id} is not in group {group.name!r}.", code="member_not_found")
    await record_audit(
        session=session,
        actor=actor,
        action="group.member_remove",
        target_type="group",
        target_id=group.id,
        details={"user_id": user_id},
    )


def _grantee(user: User | None, group: Group | None) -> tuple[ColumnElement[bool], str, int]:
    """The grants' filter for a user or a group, and how the audit log names the grantee."""
    if user is not None:
        return ServicePermission.user_id == user.id, "user", user.id
    if group is not None:
        return ServicePermission.group_id == group.id, "group", group.id
    raise ValueError("a grant needs a user or a group")


async def grant_service(
    *,
    session: AsyncSession,
    actor: Actor,
    grant_in: schemas.GrantCreate,
    user: User | None = None,
    group: Group | None = None,
) -> tuple[ServicePermission, bool]:
    """Grant a user or a group the use of a service (or change the quota); the grant, and whether it is new."""
    grantee, target_type, target_id = _grantee(user, group)
    grant = await session.scalar(
        select(ServicePermission).where(ServicePermission.service_id == grant_in.service_id, grantee)
    )
    created = grant is None
    if grant is None:
        grant = ServicePermission(
            service_id=grant_in.service_id,
            user_id=user.id if user is not None else None,
            group_id=group.id if group is not None else None,
        )
        session.add(grant)
    grant.monthly_quota = grant_in.monthly_quota
    await session.flush()
    await session.refresh(grant)
    await record_audit(
        session=session,
        actor=actor,
        action="permission.grant",
        target_type=target_type,
        target_id=target_id,
        details={"service_id": grant_in.service_id, "monthly_quota": grant_in.monthly_quota},
    )
    return grant, created


async def update_grant(
    *,
    session: AsyncSession,
    actor: Actor,
    service_id: int,
    grant_in: schemas.GrantUpdate,
    user: User | None = None,
    group: Group | None = None,
) -> ServicePermission:
    """Change the monthly quota of an existing grant; 404 when there is none."""
    grantee, target_type, target_id = _grantee(user, group)
    grant = await session.scalar(select(ServicePermission).where(ServicePermission.service_id == service_id, grantee))
    if grant is None:
        raise NotFound(f"There is no grant of service {service_id} to change.", code="grant_not_found")
    previous = grant.monthly_quota
    grant.monthly_quota = grant_in.monthly_quota
    await session.flush()
    await record_audit(
        session=session,
        actor=actor,
        action="permission.update",
        target_type=target_type,
        target_id=target_id,
        details={"service_id": service_id, "monthly_quota": grant_in.monthly_quota, "previous_quota": previous},
    )
    return grant


async def revoke_service(
    *, session: AsyncSession, actor: Actor, service_id: int, user: User | None = None, group: Group | None = None
) -> None:
    """Take back a grant; 404 when there is none."""
    grantee, target_type, target_id = _grantee(user, group)
    result = await session.execute(delete(ServicePermission).where(ServicePermission.service_id == service_id, grantee))
    if not getattr(result, "rowcount", 0):
        raise NotFound(f"There is no grant of service {service_id} to remove.", code="grant_not_found")
    await record_audit(
        session=session,
        actor=actor,
        action="permission.revoke",
        target_type=target_type,
        target_id=target_id,
        details={"service_id": service_id},
    )


def _more_generous(a: int | None, b: int | None) -> int | None:
    return None if a is None or b is None else max(a, b)


async def effective_permissions(*, session: AsyncSession, user: User) -> schemas.PermissionsRead:
    """The services a user may use: his own grants win; among his groups' grants, the largest quota does."""
    by_service: dict[int, schemas.EffectiveGrant] = {}
    direct = await session.scalars(select(ServicePermission).where(ServicePermission.user_id == user.id))
    for grant in direct:
        by_service[grant.service_id] = schemas.EffectiveGrant(
            service_id=grant.service_id, monthly_quota=grant.monthly_quota, via="user"
        )
    through_groups = await session.execute(
        select(ServicePermission, Group.name)
        .join(Group, Group.id == ServicePermission.group_id)
        .join(GroupMember, GroupMember.group_id == Group.id)
        .where(GroupMember.user_id == user.id)
        .order_by(Group.name)
    )
    for grant, group_name in through_groups:
        known = by_service.get(grant.service_id)
        if known is not None and (
            known.via == "user" or _more_generous(known.monthly_quota, grant.monthly_quota) == known.monthly_quota
        ):
            continue
        by_service[grant.service_id] = schemas.EffectiveGrant(
            service_id=grant.service_id, monthly_quota=grant.monthly_quota, via=f"group:{group_name}"
        )
    return schemas.PermissionsRead(
        user_id=user.id,
        roles=list(user.roles),
        services=[by_service[k] for k in sorted(by_service)],
        all_services="admin" in user.roles,
    )


# --- external service credentials -------------------------------------------------------------------------------


def describe_credential(*, credential: ServiceCredential, warning_days: int) -> schemas.CredentialRead:
    """What a user may see of a stored credential: that it exists, its expiry, and a warning when due."""
    now = _now()
    expires_at = credential.expires_at
    expired = expires_at is not None and expires_at <= now
    expires_soon = expires_at is not None and not expired and expires_at - now <= timedelta(days=warning_days)
    warning = None
    if expired:
        warning = "This token has expired; store a new one."
    elif expires_soon and expires_at is not None:
        days = max(0, (expires_at - now).days)
        warning = f"This token expires in {days} day{'s' if days != 1 else ''}; renew it soon."
    return schemas.CredentialRead(
        service_id=credential.service_id,
        expires_at=expires_at,
        expires_soon=expires_soon,
        expired=expired,
        warning=warning,
        created_at=credential.created_at,
        updated_at=credential.updated_at,
    )


async def store_credential(
    *, session: AsyncSession, fernet: MultiFernet, actor: Actor, user: User, credential_in: schemas.CredentialCreate
) -> ServiceCredential:
    """Store (or replace) the user's token for a service, encrypted."""
    credential = await session.scalar(
        select(ServiceCredential).where(
            ServiceCredential.user_id == user.id, ServiceCredential.service_id == credential_in.service_id
        )
    )
    encrypted = fernet.encrypt(credential_in.token.encode())
    if credential is None:
        credential = ServiceCredential(user_id=user.id, service_id=credential_in.service_id, encrypted_token=encrypted)
        session.add(credential)
    else:
        credential.encrypted_token = encrypted
    credential.expires_at = credential_in.expires_at
    await session.flush()
    await session.refresh(credential)
    await record_audit(
        session=session,
        actor=actor,
        action="credential.store",
        target_type="service",
        target_id=credential.service_id,
    )
    return credential


async def list_credentials(
    *, session: AsyncSession, user_id: int, params: PageParams
) -> tuple[list[ServiceCredential], int]:
    """The user's stored credentials, by service."""
    statement: Select[Any] = (
        select(ServiceCredential).where(ServiceCredential.user_id == user_id).order_by(ServiceCredential.service_id)
    )
    return await paginate(session, statement, params)


async def delete_credential(*, session: AsyncSession, actor: Actor, user_id: int, service_id: int) -> None:
    """Forget the user's token for a service; 404 when there is none."""
    result = await session.execute(
        delete(ServiceCredential).where(
            ServiceCredential.user_id == user_id, ServiceCredential.service_id == service_id
        )
    )
    if not getattr(result, "rowcount", 0):
        raise NotFound(f"No credential is stored for service {service_id}.", code="credential_not_found")
    await record_audit(
        session=session,
        actor=actor,
        action="credential.delete",
        target_type="service",
        target_id=service_id,
    )


async def reveal_credential(
    *, session: AsyncSession, fernet: MultiFernet, actor: Actor, user_id: int, service_id: int
) -> schemas.InternalCredential:
    """The decrypted token, for the job processor only (the caller is checked by the endpoint)."""
    credential = await session.scalar(
        select(ServiceCredential).where(
            ServiceCredential.user_id == user_id, ServiceCredential.service_id == service_id
        )
    )
    if credential is None:
        raise NotFound(f"User {user_id} has no credential for service {service_id}.", code="credential_not_found")
    plaintext = decrypt(fernet, credential.encrypted_token)
    if plaintext is None:
        logger.error("credential %s cannot be decrypted with the configured FERNET_KEY", credential.id)
        raise NotFound(
            "The stored credential cannot be read; the user must store it again.", code="credential_unreadable"
        )
    await record_audit(
        session=session,
        actor=actor,
        action="credential.read",
        target_type="user",
        target_id=user_id,
        details={"service_id": service_id},
    )
    return schemas.InternalCredential(token=plaintext, expires_at=credential.expires_at)
