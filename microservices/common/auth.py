"""Token verification every service does for itself: RS256 JWTs checked against the user service's JWKS.

A service never trusts a user id in a header: it checks the bearer token's signature, issuer, audience and
expiry locally. Opaque personal API tokens are resolved by an introspector the identity service provides.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Annotated, Any

import httpx
from fastapi import Depends, Request
from jose import ExpiredSignatureError, JOSEError, JWTError, jwk, jwt

from microservices.common.errors import Forbidden, ServiceUnavailable, Unauthorized

logger = logging.getLogger(__name__)

ALGORITHM = "RS256"
ROLES = ("researcher", "service_admin", "admin")


@dataclass(frozen=True)
class Principal:
    """Who is calling: a user (by id) or a service account (by client id), with roles."""

    subject: str
    username: str
    roles: frozenset[str] = field(default_factory=frozenset)
    token_id: str | None = None
    is_service: bool = False
    claims: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def user_id(self) -> int | None:
        """The numeric user id, or None for a service account."""
        return None if self.is_service or not self.subject.isdigit() else int(self.subject)

    def has_role(self, *roles: str) -> bool:
        """True when the caller has at least one of `roles`."""
        return bool(self.roles.intersection(roles))

    @property
    def is_admin(self) -> bool:
        return "admin" in self.roles


Introspector = Callable[[str], Awaitable[Principal]]
RevocationCheck = Callable[[Principal], Awaitable[bool]]


class TokenVerifier:
    """Verifies access tokens locally with cached public keys, refreshing them on an unknown key id."""

    def __init__(
        self,
        *,
        issuer: str,
        audiences: Iterable[str],
        internal_audience: str,
        jwks_url: str | None = None,
        http: httpx.AsyncClient | None = None,
        keys: dict[str, Any] | None = None,
        min_refresh_interval_s: float = 10.0,
    ) -> None:
        self.issuer = issuer
        self.audiences = frozenset(audiences)
        self.internal_audience = internal_audience
        self.jwks_url = jwks_url
        self.http = http
        self._keys: dict[str, Any] = dict(keys or {})
        self._last_refresh = 0.0
        self._min_refresh_interval_s = min_refresh_interval_s
        self._refresh_lock = asyncio.Lock()
        # Set by services that can resolve opaque API tokens and check revocations (identity issue).
        self.introspector: Introspector | None = None
        self.revocation_check: RevocationCheck | None = None

    def set_jwks(self, jwks: dict[str, Any]) -> None:
        """Replace the known keys with those of a JWKS document."""
        keys: dict[str, Any] = {}
        for k in jwks.get("keys", []):
            if k.get("kid") and k.get("kty") == "RSA":
                # Built once here rather than on every verification, where it was half the cost.
                try:
                    keys[k["kid"]] = jwk.construct(k, ALGORITHM)
                except (JOSEError, ValueError, TypeError) as exc:
                    logger.warning("ignoring unusable signing key %s: %s", k["kid"], exc)
        self._keys = keys

    async def _refresh_keys(self) -> None:
        if self.http is None or self.jwks_url is None:
            return
        async with self._refresh_lock:
            # A flood of tokens with made-up key ids must not become a flood of JWKS fetches.
            if time.monotonic() - self._last_refresh < self._min_refresh_interval_s:
                return
            self._last_refresh = time.monotonic()
            try:
                response = await self.http.get(self.jwks_url)
                response.raise_for_status()
                self.set_jwks(response.json())
            except (httpx.HTTPError, ValueError) as exc:
                logger.warning("could not fetch signing keys from %s: %s", self.jwks_url, exc)

    async def _key_for(self, kid: str) -> Any:
        if kid not in self._keys:
            await self._refresh_keys()
        key = self._keys.get(kid)
        if key is None:
            raise Unauthorized("The token was signed with an unknown key.", code="invalid_token")
        return key

    async def verify(self, token: str) -> Principal:
        """The principal a bearer token stands for; raises Unauthorized for anything not valid now."""
        if token.count(".") != 2:
            return await self._introspect(token)
        try:
            header = jwt.get_unverified_header(token)
        except JWTError as exc:
            raise Unauthorized("The token is malformed.", code="invalid_token") from exc
        if header.get("alg") != ALGORITHM:
            raise Unauthorized("The token's signing algorithm is not accepted.", code="invalid_token")
        key = await self._key_for(str(header.get("kid", "")))
        try:
            claims = jwt.decode(
                token,
                jwk.construct(key, ALGORITHM) if isinstance(key, dict) else key,
                algorithms=[ALGORITHM],
                issuer=self.issuer,
                options={"verify_aud": False, "require_exp": True, "require_iat": True, "require_sub": True},
            )
        except ExpiredSignatureError as exc:
            raise Unauthorized("The token has expired.", code="token_expired") from exc
        except JWTError as exc:
            raise Unauthorized("The token is not valid.", code="invalid_token") from exc
        audiences = claims.get("aud")
        token_audiences = {audiences} if isinstance(audiences, str) else set(audiences or ())
        if not token_audiences & (self.audiences | {self.internal_audience}):
            raise Unauthorized("The token is not meant for this platform.", code="invalid_audience")
        principal = Principal(
            subject=str(claims["sub"]),
            username=str(claims.get("username", claims["sub"])),
            roles=frozenset(claims.get("roles", ())),
            token_id=claims.get("jti"),
            is_service=self.internal_audience in token_audiences,
            claims=claims,
        )
        if self.revocation_check is not None and await self.revocation_check(principal):
            raise Unauthorized("The token has been revoked.", code="token_revoked")
        return principal

    async def _introspect(self, token: str) -> Principal:
        if self.introspector is None:
            raise Unauthorized("The token is not valid.", code="invalid_token")
        return await self.introspector(token)


# Personal API tokens start with this; the user service issues them.
API_TOKEN_PREFIX = "fip_"  # noqa: S105 - a marker, not a secret


class RemoteIntrospector:
    """Resolves personal API tokens (`fip_...`) with the user service's `POST /auth/introspect`.

    Answers are kept `cache_s` seconds, keyed by the token's digest; the gateway checks every call first, so a
    revoked token is refused there at once.
    """

    def __init__(self, *, http: httpx.AsyncClient, url: str, service_tokens: Any, cache_s: float = 10.0) -> None:
        self.http = http
        self.url = url
        # A ServiceTokenProvider (microservices.common.service_auth): `headers()` and `forget()`.
        self.service_tokens = service_tokens
        self.cache_s = cache_s
        self._cache: dict[str, tuple[float, Principal | None]] = {}

    async def __call__(self, token: str) -> Principal:
        if not token.startswith(API_TOKEN_PREFIX):  # anything else is no token of ours: no call for it
            raise Unauthorized("The token is not valid.", code="invalid_token")
        key = hashlib.sha256(token.encode()).hexdigest()
        now = time.monotonic()
        cached = self._cache.get(key)
        if cached is not None and cached[0] > now:
            principal = cached[1]
        else:
            principal = await self._ask(token)
            if len(self._cache) >= 10_000:
                self._cache.clear()
            self._cache[key] = (now + self.cache_s, principal)
        if principal is None:
            raise Unauthorized("The API token is not valid, expired or revoked.", code="invalid_token")
        return principal

    async def _ask(self, token: str) -> Principal | None:
        try:
            response = await self.http.post(
                self.url, json={"token": token}, headers=await self.service_tokens.headers()
            )
            if response.status_code == 401:  # our service token expired or the key rotated: once more, afresh
                self.service_tokens.forget()
                response = await self.http.post(
                    self.url, json={"token": token}, headers=await self.service_tokens.headers()
                )
        except httpx.HTTPError as exc:
            raise ServiceUnavailable(f"The user service could not be reached to check the API token: {exc}") from exc
        if response.status_code != 200:
            raise ServiceUnavailable(f"The user service could not check the API token (HTTP {response.status_code}).")
        body = response.json()
        if not body.get("active"):
            return None
        return Principal(
            subject=str(body["sub"]),
            username=str(body.get("username", body["sub"])),
            roles=frozenset(body.get("roles") or ()),
            token_id=body.get("token_id"),
            claims=body,
        )


REVOKED_BEFORE_KEY = "auth:revoked_before:{subject}"


def redis_revocation_check(client: Any) -> RevocationCheck:
    """Tokens of a subject issued before the time the user service recorded (deactivation, password change).

    Redis being away must not take every service down with it: the check then passes, tokens being short-lived.
    """

    async def revoked(principal: Principal) -> bool:
        try:
            value = await client.get(REVOKED_BEFORE_KEY.format(subject=principal.subject))
        except Exception as exc:
            logger.warning("revocation check skipped, Redis unavailable: %s", exc)
            return False
        if value is None:
            return False
        return int(principal.claims.get("iat", 0)) < int(value)

    return revoked


def bearer_token(request: Request) -> str | None:
    """The bearer token of the Authorization header, if any."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


async def get_principal(request: Request) -> Principal:
    """FastAPI dependency: the verified caller, or 401."""
    cached = getattr(request.state, "principal", None)
    if isinstance(cached, Principal):
        return cached
    token = bearer_token(request)
    if token is None:
        raise Unauthorized("Send a bearer token in the Authorization header.")
    verifier: TokenVerifier = request.app.state.token_verifier
    principal = await verifier.verify(token)
    request.state.principal = principal
    return principal


CurrentPrincipal = Annotated[Principal, Depends(get_principal)]


def require_roles(*roles: str) -> Callable[[Principal], Awaitable[Principal]]:
    """Dependency factory: the caller must hold one of `roles` (service accounts always pass)."""

    async def dependency(principal: CurrentPrincipal) -> Principal:
        if principal.is_service or principal.has_role(*roles):
            return principal
        raise Forbidden(f"This needs one of the roles: {', '.join(roles)}.")

    return dependency


async def require_service(principal: CurrentPrincipal) -> Principal:
    """Dependency: only a service account (client-credentials token) may call."""
    if not principal.is_service:
        raise Forbidden("This endpoint is for the platform's own services.")
    return principal


AdminPrincipal = Annotated[Principal, Depends(require_roles("admin"))]
ServicePrincipal = Annotated[Principal, Depends(require_service)]
