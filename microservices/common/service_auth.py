"""Service-to-service identity: the OAuth2 client-credentials grant against the user service.

A calling component (gateway, Django, job processor, ...) holds a client id and secret, exchanges them for a
short internal-audience access token, caches it until shortly before it expires, and sends it as a bearer token.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import time

import httpx

from microservices.common.errors import ServiceUnavailable
from microservices.common.settings import ServiceSettings


def client_secret_for(shared_secret: str, client_id: str) -> str:
    """The secret of service account `client_id` derived from the shared secret: HMAC-SHA256 in hex."""
    # Derived per client, so that one component's secret does not let it sign in as another.
    return hmac.new(shared_secret.encode(), client_id.encode(), hashlib.sha256).hexdigest()


def component_client_secret(settings: ServiceSettings) -> str:
    """This component's secret: its own `<PREFIX>INTERNAL_CLIENT_SECRET`, else derived from the shared one."""
    secret = settings.internal_client_secret.get_secret_value() if settings.internal_client_secret else ""
    prefix = str(settings.model_config.get("env_prefix", "")).upper()
    if not secret or (prefix and os.environ.get(f"{prefix}INTERNAL_CLIENT_SECRET")):
        return secret
    return client_secret_for(secret, settings.internal_client_id or settings.service_name)


class ServiceTokenProvider:
    """Gets and caches this component's service-account access token."""

    def __init__(
        self,
        *,
        http: httpx.AsyncClient,
        token_url: str,
        client_id: str,
        client_secret: str,
        refresh_leeway_s: float = 60.0,
    ) -> None:
        self.http = http
        self.token_url = token_url
        self.client_id = client_id
        self._client_secret = client_secret
        self._refresh_leeway_s = refresh_leeway_s
        self._token: str | None = None
        self._expires_at = 0.0
        self._lock = asyncio.Lock()

    @classmethod
    def from_settings(cls, settings: ServiceSettings, http: httpx.AsyncClient) -> ServiceTokenProvider:
        """A provider for the component `settings` describe (client id defaults to its service name)."""
        return cls(
            http=http,
            token_url=f"{settings.user_service_url.rstrip('/')}/auth/token",
            client_id=settings.internal_client_id or settings.service_name,
            client_secret=component_client_secret(settings),
        )

    async def token(self) -> str:
        """A current access token, fetched anew only when the cached one is about to expire."""
        if self._token is not None and time.monotonic() < self._expires_at:
            return self._token
        async with self._lock:
            if self._token is not None and time.monotonic() < self._expires_at:
                return self._token
            try:
                response = await self.http.post(
                    self.token_url,
                    data={
                        "grant_type": "client_credentials",
                        "client_id": self.client_id,
                        "client_secret": self._client_secret,
                    },
                )
            except httpx.HTTPError as exc:
                raise ServiceUnavailable(f"The user service could not be reached for a service token: {exc}") from exc
            if response.status_code != 200:
                raise ServiceUnavailable(
                    f"The user service refused this component's credentials (HTTP {response.status_code})."
                )
            body = response.json()
            self._token = str(body["access_token"])
            self._expires_at = time.monotonic() + float(body.get("expires_in", 300)) - self._refresh_leeway_s
            return self._token

    async def headers(self) -> dict[str, str]:
        """The Authorization header for a call to another service."""
        return {"Authorization": f"Bearer {await self.token()}"}

    def forget(self) -> None:
        """Drop the cached token (after a 401), so the next call fetches a new one."""
        self._token = None
