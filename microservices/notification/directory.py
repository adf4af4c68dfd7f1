"""Who to write to: users' e-mail addresses and the admin list, from the user service, cached."""

from __future__ import annotations

import time
from typing import Any, Protocol

import httpx

from microservices.common.errors import ServiceUnavailable
from microservices.common.service_auth import ServiceTokenProvider


class Directory(Protocol):
    """What the e-mail sender needs to know about users (stubbed in unit tests)."""

    async def email_of(self, user_id: int) -> str | None: ...

    async def admin_emails(self) -> list[str]: ...


class UserDirectory:
    """Asks the user service (`GET /users/{id}`, `GET /users?role=admin`) with a service token; caches answers."""

    def __init__(
        self, *, http: httpx.AsyncClient, base_url: str, token_provider: ServiceTokenProvider, ttl_s: float = 300.0
    ) -> None:
        self.http = http
        self.base_url = base_url.rstrip("/")
        self.token_provider = token_provider
        self.ttl_s = ttl_s
        self._cache: dict[str, tuple[float, Any]] = {}

    async def _get(self, path: str, params: dict[str, Any] | None = None) -> httpx.Response:
        for attempt in range(2):
            try:
                response = await self.http.get(
                    f"{self.base_url}{path}", params=params, headers=await self.token_provider.headers()
                )
            except httpx.HTTPError as exc:
                raise ServiceUnavailable(f"The user service could not be reached: {exc}") from exc
            if response.status_code == 401 and attempt == 0:
                self.token_provider.forget()
                continue
            return response
        return response

    def _cached(self, key: str) -> tuple[bool, Any]:
        hit = self._cache.get(key)
        if hit is not None and hit[0] > time.monotonic():
            return True, hit[1]
        return False, None

    def _store(self, key: str, value: Any) -> None:
        self._cache[key] = (time.monotonic() + self.ttl_s, value)

    async def email_of(self, user_id: int) -> str | None:
        """The user's e-mail address, or None when the user does not exist or has none."""
        found, value = self._cached(f"user:{user_id}")
        if found:
            return value
        response = await self._get(f"/users/{user_id}")
        if response.status_code == 404:
            email = None
        elif response.status_code != 200:
            raise ServiceUnavailable(f"The user service answered {response.status_code} for user {user_id}.")
        else:
            body = response.json()
            email = body.get("email") if body.get("is_active", True) else None
        self._store(f"user:{user_id}", email)
        return email

    async def admin_emails(self) -> list[str]:
        """The e-mail addresses of every active admin."""
        found, value = self._cached("admins")
        if found:
            return value
        response = await self._get("/users", {"role": "admin", "page_size": 200})
        if response.status_code != 200:
            raise ServiceUnavailable(f"The user service answered {response.status_code} for the admin list.")
        body = response.json()
        items = body.get("items", body) if isinstance(body, dict) else body
        emails = sorted({u["email"] for u in items if u.get("email") and u.get("is_active", True)})
        self._store("admins", emails)
        return emails
