"""Django's HTTP client for the service registry, authenticated as the `django` service account."""

from __future__ import annotations

import os
import threading
import time
from typing import Any

import httpx
from asgiref.sync import async_to_sync
from django.conf import settings

from microservices.common.errors import AppError
from microservices.common.service_auth import ServiceTokenProvider, client_secret_for

# A service token is reused this long; it is valid longer, and a 401 fetches a new one at once.
TOKEN_REUSE_S = 120.0


class RegistryError(Exception):
    """The registry did not do what was asked."""


class RegistryUnavailable(RegistryError):
    """The registry (or the user service for its token) could not be reached or failed: worth retrying."""


class RegistryRejected(RegistryError):
    """The registry refused the request (4xx): retrying the same request would not help."""

    def __init__(self, message: str, *, status_code: int, body: Any = None) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.body = body


_token_lock = threading.Lock()
_token: tuple[str, float] | None = None


def client_secret() -> str:
    """Django's own DJANGO_INTERNAL_CLIENT_SECRET, else the secret derived for its client id from the shared one."""
    if os.environ.get("DJANGO_INTERNAL_CLIENT_SECRET") or not settings.INTERNAL_CLIENT_SECRET:
        return str(settings.INTERNAL_CLIENT_SECRET)
    return client_secret_for(settings.INTERNAL_CLIENT_SECRET, settings.INTERNAL_CLIENT_ID)


async def _fetch_token() -> str:
    async with httpx.AsyncClient(timeout=settings.REGISTRY_TIMEOUT_S) as http:
        provider = ServiceTokenProvider(
            http=http,
            token_url=f"{settings.USER_SERVICE_URL.rstrip('/')}/auth/token",
            client_id=settings.INTERNAL_CLIENT_ID,
            client_secret=client_secret(),
        )
        return await provider.token()


def service_token(*, renew: bool = False) -> str:
    """Django's service-account token, fetched from the user service when missing, old or refused."""
    global _token
    with _token_lock:
        if _token is not None and not renew and time.monotonic() < _token[1]:
            return _token[0]
        try:
            token = async_to_sync(_fetch_token)()
        except AppError as exc:
            raise RegistryUnavailable(exc.message) from exc
        _token = (token, time.monotonic() + TOKEN_REUSE_S)
        return token


def forget_token() -> None:
    """Drop the cached token (tests, or after the user service rotated its keys)."""
    global _token
    with _token_lock:
        _token = None


class RegistryClient:
    """Calls to the registry; raises RegistryUnavailable (retry later) or RegistryRejected (do not)."""

    def __init__(self, *, base_url: str | None = None, transport: httpx.BaseTransport | None = None) -> None:
        self.base_url = (base_url or settings.SERVICE_REGISTRY_URL).rstrip("/")
        self.http = httpx.Client(
            base_url=self.base_url,
            timeout=httpx.Timeout(settings.REGISTRY_TIMEOUT_S, connect=min(2.0, settings.REGISTRY_TIMEOUT_S)),
            headers={"User-Agent": "federated-imputation/django"},
            transport=transport,
        )

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.http.close()

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One call with the service token; a refused token is renewed once."""
        for attempt in range(2):
            headers = {"Authorization": f"Bearer {service_token(renew=attempt > 0)}"}
            try:
                response = self.http.request(method, path, headers=headers, **kwargs)
            except httpx.HTTPError as exc:
                raise RegistryUnavailable(f"The service registry could not be reached: {exc}") from exc
            if response.status_code != 401:
                break
        if response.status_code >= 500 or response.status_code == 401:
            raise RegistryUnavailable(f"The service registry answered HTTP {response.status_code}.")
        if response.status_code >= 400:
            body = _json(response)
            detail = body.get("detail") if isinstance(body, dict) else response.text[:200]
            raise RegistryRejected(
                f"The service registry refused the request: {detail}", status_code=response.status_code, body=body
            )
        return response

    def upsert_django_service(self, django_id: int, body: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        """Create or update the registry's copy of a Django service; True when it was created."""
        response = self.request("PUT", f"/internal/services/django/{django_id}", json=body)
        return response.json(), response.status_code == 201

    def delete_django_service(self, django_id: int) -> None:
        """Remove the registry's copy of a Django service (idempotent)."""
        self.request("DELETE", f"/internal/services/django/{django_id}")

    def list_services(self) -> list[dict[str, Any]]:
        """Every service the registry holds."""
        return self._all_pages("/services")

    def list_panels(self, registry_id: int) -> list[dict[str, Any]]:
        """Every panel of one registry service."""
        return self._all_pages(f"/services/{registry_id}/panels")

    def health(self, registry_id: int, *, refresh: bool = False) -> dict[str, Any]:
        """The registry's latest health of a service; `refresh` checks it now."""
        params = {"refresh": "true"} if refresh else {}
        return dict(self.request("GET", f"/services/{registry_id}/health", params=params).json())

    def sync_panels(self, registry_id: int) -> dict[str, Any]:
        """Ask the registry to read a service's panels from the service itself."""
        return dict(self.request("POST", f"/services/{registry_id}/sync").json())

    def test_connection(self, *, api_type: str, base_url: str) -> dict[str, Any]:
        """Probe a URL through the registry, saving nothing."""
        body = {"api_type": api_type, "base_url": base_url}
        return dict(self.request("POST", "/services/test-connection", json=body).json())

    def _all_pages(self, path: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        page = 1
        while True:
            body = self.request("GET", path, params={"page": page, "page_size": 200}).json()
            items.extend(body["items"])
            if len(items) >= body["total"] or not body["items"]:
                return items
            page += 1


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None
