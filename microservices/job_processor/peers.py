"""The job processor's peers over HTTP: the user service, the service registry and the file manager.

Every call carries this component's service-account token (client-credentials grant). A peer that cannot be
reached is a 503 for the caller; a peer's 404 is None, so that the domain code words its own message.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import httpx

from microservices.common.errors import AppError, ServiceUnavailable, UpstreamError
from microservices.common.service_auth import ServiceTokenProvider
from microservices.common.settings import ServiceSettings

logger = logging.getLogger(__name__)


UPLOAD_CHUNK_BYTES = 1 << 20


class AsyncReadable(Protocol):
    """An uploaded file read with awaits (Starlette's UploadFile)."""

    size: int | None

    async def read(self, size: int = -1) -> bytes: ...

    async def seek(self, offset: int) -> None: ...


def _form_quoted(value: str) -> str:
    """A multipart parameter value as browsers escape it: quotes and control characters percent-encoded."""
    value = value.replace("\\", "\\\\")
    return "".join(f"%{ord(c):02X}" if c == '"' or ord(c) < 0x20 else c for c in value)


@dataclass(frozen=True)
class Credential:
    """A secret for a remote service; never logged, never stored in a job."""

    token: str
    source: str  # "user" or "service"
    auth_mode: str | None = None

    def __repr__(self) -> str:
        return f"Credential(source={self.source!r}, auth_mode={self.auth_mode!r}, token=***)"


class Peers:
    """Calls to the other services on behalf of the job processor."""

    def __init__(self, *, settings: ServiceSettings, http: httpx.AsyncClient, tokens: ServiceTokenProvider) -> None:
        self.http = http
        self.tokens = tokens
        self.user_service = settings.user_service_url.rstrip("/")
        self.registry = settings.service_registry_url.rstrip("/")
        self.file_manager = settings.file_manager_url.rstrip("/")

    @classmethod
    def from_settings(cls, settings: ServiceSettings, http: httpx.AsyncClient) -> Peers:
        """Peers reached with `http`, authenticated as this component's service account."""
        return cls(settings=settings, http=http, tokens=ServiceTokenProvider.from_settings(settings, http))

    async def _request(self, method: str, url: str, *, peer: str, **kwargs: Any) -> httpx.Response:
        for attempt in (1, 2):
            headers = {**kwargs.pop("headers", {}), **await self.tokens.headers()}
            try:
                response = await self.http.request(method, url, headers=headers, **kwargs)
            except httpx.HTTPError as exc:
                raise ServiceUnavailable(f"The {peer} could not be reached: {type(exc).__name__}.") from exc
            if response.status_code == 401 and attempt == 1:
                self.tokens.forget()  # the cached service token expired or the keys rotated: get a new one
                continue
            if response.status_code >= 500:
                raise ServiceUnavailable(f"The {peer} failed (HTTP {response.status_code}).")
            return response
        return response

    async def _json(self, method: str, url: str, *, peer: str, **kwargs: Any) -> Any | None:
        response = await self._request(method, url, peer=peer, **kwargs)
        if response.status_code == 404:
            return None
        if response.status_code >= 400:
            raise UpstreamError(f"The {peer} refused the request (HTTP {response.status_code}).")
        return response.json()

    # --- user service ---------------------------------------------------------------------------------------------

    async def permissions(self, user_id: int) -> dict[str, Any] | None:
        """`{user_id, roles, services: [{service_id, monthly_quota, via}], all_services}` or None."""
        return await self._json("GET", f"{self.user_service}/users/{user_id}/permissions", peer="user service")

    async def user_credential(self, user_id: int, service_id: int) -> str | None:
        """The user's own token for a remote service, if they stored one."""
        body = await self._json(
            "GET", f"{self.user_service}/internal/users/{user_id}/credentials/{service_id}", peer="user service"
        )
        return str(body["token"]) if body and body.get("token") else None

    # --- registry -------------------------------------------------------------------------------------------------

    async def service(self, service_id: int | str) -> dict[str, Any] | None:
        """A registered imputation service, or None."""
        return await self._json("GET", f"{self.registry}/services/{service_id}", peer="service registry")

    async def panels(self, service_id: int) -> list[dict[str, Any]]:
        """The reference panels of a service."""
        body = await self._json(
            "GET",
            f"{self.registry}/reference-panels",
            params={"service_id": service_id, "page_size": 200},
            peer="service registry",
        )
        if body is None:
            return []
        return list(body["items"] if isinstance(body, dict) else body)

    async def service_credential(self, service_id: int) -> tuple[str, str | None] | None:
        """The service's own credential and its auth mode, if the admin set one."""
        body = await self._json("GET", f"{self.registry}/internal/services/{service_id}/credential", peer="registry")
        if not body or not body.get("credential"):
            return None
        return str(body["credential"]), body.get("auth_mode")

    async def credential(self, *, user_id: int, service_id: int) -> Credential | None:
        """The user's own token for the service when present, else the service's (never stored in the job)."""
        token = await self.user_credential(user_id, service_id)
        if token:
            return Credential(token=token, source="user")
        found = await self.service_credential(service_id)
        if found:
            return Credential(token=found[0], source="service", auth_mode=found[1])
        return None

    # --- file manager ---------------------------------------------------------------------------------------------

    async def file(self, file_id: str) -> dict[str, Any] | None:
        """A file's metadata (owner, size, checksums, VCF summary), or None."""
        return await self._json("GET", f"{self.file_manager}/files/{file_id}", peer="file manager")

    async def signed_url(self, file_id: str) -> str:
        """A short-lived URL a remote node can fetch the file from without a token."""
        body = await self._json("POST", f"{self.file_manager}/files/{file_id}/signed-url", peer="file manager")
        if body is None:
            raise UpstreamError(f"The file manager has no file {file_id}.")
        return str(body["url"])

    @contextlib.asynccontextmanager
    async def open_file(self, file_id: str, *, timeout_s: float = 600.0) -> AsyncIterator[httpx.Response]:
        """The streamed download of a stored file (iterate `aiter_bytes()`)."""
        headers = await self.tokens.headers()
        url = f"{self.file_manager}/files/{file_id}/download"
        try:
            async with self.http.stream("GET", url, headers=headers, timeout=timeout_s) as response:
                if response.status_code != 200:
                    status = response.status_code
                    raise UpstreamError(f"The file manager could not send file {file_id} (HTTP {status}).")
                yield response
        except httpx.HTTPError as exc:
            raise ServiceUnavailable(f"The file manager could not be reached: {type(exc).__name__}.") from exc

    async def upload_input(
        self, upload: AsyncReadable, *, filename: str, authorization: str, timeout_s: float = 600.0
    ) -> dict[str, Any]:
        """Store a user's input file with the user's own token (their quota and ownership apply)."""
        # Built by hand: httpx reads a file part synchronously, which would block the event loop for the whole
        # transfer of a spooled upload; here every chunk is an awaited read.
        marker = f"fi-{secrets.token_hex(16)}"
        head = (
            f'--{marker}\r\nContent-Disposition: form-data; name="file"; filename="{_form_quoted(filename)}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        tail = f"\r\n--{marker}--\r\n".encode()

        async def streamed() -> AsyncIterator[bytes]:
            yield head
            while chunk := await upload.read(UPLOAD_CHUNK_BYTES):
                yield chunk
            yield tail

        await upload.seek(0)
        headers = {"Authorization": authorization, "Content-Type": f"multipart/form-data; boundary={marker}"}
        if upload.size is not None:
            headers["Content-Length"] = str(len(head) + upload.size + len(tail))
        try:
            response = await self.http.post(
                f"{self.file_manager}/files/upload", headers=headers, content=streamed(), timeout=timeout_s
            )
        except httpx.HTTPError as exc:
            raise ServiceUnavailable(f"The file manager could not be reached: {type(exc).__name__}.") from exc
        if response.status_code >= 500:
            raise ServiceUnavailable(f"The file manager failed (HTTP {response.status_code}).")
        if response.status_code not in (200, 201):
            # The file manager's own refusal (not a VCF, too large, over quota) is the user's answer as it is.
            try:
                body = response.json()
            except ValueError:
                body = {}
            raise AppError(
                str(body.get("detail") or f"The file manager refused the upload (HTTP {response.status_code})."),
                code=str(body.get("error") or "upload_refused"),
                status_code=response.status_code,
            )
        return dict(response.json())

    async def delete_file(self, file_id: str, *, authorization: str) -> None:
        """Remove a file uploaded for a job that was then refused (nothing is left half-way)."""
        try:
            await self.http.delete(f"{self.file_manager}/files/{file_id}", headers={"Authorization": authorization})
        except httpx.HTTPError as exc:
            logger.warning("could not remove orphan upload %s: %s", file_id, exc)

    async def upload_result(
        self, path: Path, *, filename: str, job_id: str, owner_id: int, timeout_s: float = 600.0
    ) -> dict[str, Any]:
        """Store a result file for a job's owner; returns the file manager's record (with its checksums)."""
        headers = await self.tokens.headers()
        with path.open("rb") as handle:
            try:
                response = await self.http.post(
                    f"{self.file_manager}/files/upload",
                    headers=headers,
                    files={"file": (filename, handle, "application/octet-stream")},
                    data={"purpose": "result", "job_id": job_id, "owner_id": str(owner_id)},
                    timeout=timeout_s,
                )
            except httpx.HTTPError as exc:
                raise ServiceUnavailable(f"The file manager could not be reached: {type(exc).__name__}.") from exc
        if response.status_code not in (200, 201):
            raise UpstreamError(
                f"The file manager refused result {filename} (HTTP {response.status_code}): {response.text[:200]}"
            )
        return dict(response.json())
