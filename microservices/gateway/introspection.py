"""Personal API tokens (`fip_...`) resolved by the user service's introspection endpoint, answers kept briefly."""

from __future__ import annotations

import hashlib
import logging
import time

import httpx

from microservices.common.auth import Principal
from microservices.common.errors import ServiceUnavailable, Unauthorized
from microservices.common.service_auth import ServiceTokenProvider

logger = logging.getLogger(__name__)

_MAX_ENTRIES = 10_000


class CachedIntrospector:
    """Asks the user service who an API token stands for, and remembers the answer for `cache_s` seconds."""

    def __init__(
        self, *, http: httpx.AsyncClient, url: str, service_tokens: ServiceTokenProvider, cache_s: float
    ) -> None:
        self.http = http
        self.url = url
        self.service_tokens = service_tokens
        self.cache_s = cache_s
        # Keyed by the token's digest, so that no usable token sits in memory longer than the request.
        self._cache: dict[str, tuple[float, Principal | None]] = {}

    async def __call__(self, token: str) -> Principal:
        """The principal of an active API token; Unauthorized for anything else."""
        key = hashlib.sha256(token.encode()).hexdigest()
        now = time.monotonic()
        cached = self._cache.get(key)
        if cached is not None and cached[0] > now:
            principal = cached[1]
        else:
            principal, expires_in = await self._ask(token)
            if len(self._cache) >= _MAX_ENTRIES:
                self._cache.clear()
            self._cache[key] = (now + min(self.cache_s, expires_in), principal)
        if principal is None:
            raise Unauthorized("The API token is not valid.", code="invalid_token")
        return principal

    async def _ask(self, token: str) -> tuple[Principal | None, float]:
        response = await self._post(token)
        if response.status_code == 401:
            # Our own service token may have expired or been rotated: fetch a new one once.
            self.service_tokens.forget()
            response = await self._post(token)
        if response.status_code != 200:
            raise ServiceUnavailable(f"The user service could not check the API token (HTTP {response.status_code}).")
        body = response.json()
        if not body.get("active"):
            return None, self.cache_s
        principal = Principal(
            subject=str(body["sub"]),
            username=str(body.get("username", body["sub"])),
            roles=frozenset(body.get("roles") or ()),
            token_id=str(body["token_id"]) if body.get("token_id") is not None else None,
            claims=body,
        )
        expires_in = float(body["exp"]) - time.time() if body.get("exp") else self.cache_s
        return principal, max(0.0, expires_in)

    async def _post(self, token: str) -> httpx.Response:
        try:
            return await self.http.post(self.url, json={"token": token}, headers=await self.service_tokens.headers())
        except httpx.HTTPError as exc:
            logger.warning("token introspection failed: %s", exc)
            raise ServiceUnavailable("The user service could not be reached to check the API token.") from exc
