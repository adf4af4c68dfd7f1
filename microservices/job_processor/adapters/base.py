"""The one interface every protocol adapter implements: submit, find, status, outputs, download, cancel.

Adapters speak one remote protocol each and map its states onto ours. They raise TransientRemoteError for what
may pass (timeouts, refused connections, 5xx, 429, a server's "too many jobs") and PermanentRemoteError for what
will not (bad credentials, a refused request, a job the server lost); the caller retries the first with backoff
and fails the job with the second's message.
"""

from __future__ import annotations

import contextlib
import secrets
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

import httpx

from microservices.job_processor.peers import Credential


class RemoteError(Exception):
    """A remote call did not do what was asked."""


class TransientRemoteError(RemoteError):
    """Worth trying again later."""


class PermanentRemoteError(RemoteError):
    """Trying again will not help; the job fails with this message."""


@dataclass(frozen=True)
class RemoteStatus:
    """Where a remote job stands, mapped onto our states (running, downloading, failed, cancelled)."""

    status: str
    remote_state: str
    message: str | None = None
    progress: int | None = None
    logs: str | None = None


@dataclass(frozen=True)
class RemoteOutput:
    """A result file the remote server offers."""

    name: str
    url: str
    size_bytes: int | None = None


@dataclass(frozen=True)
class InputFile:
    file_id: str
    filename: str
    size_bytes: int | None = None


@dataclass(frozen=True)
class Submission:
    """Everything an adapter needs to submit a job, without the job's database row."""

    job_id: str
    name: str
    build: str
    phasing: bool
    population: str | None
    mode: str
    r2_filter: float | None
    panel_remote_id: str
    panel_parameters: dict[str, Any]
    inputs: Sequence[InputFile]
    result_password: str | None = None
    service_options: dict[str, Any] = field(default_factory=dict)


class FileSource(Protocol):
    """Where the inputs come from (the file manager)."""

    def open_file(self, file_id: str, *, timeout_s: float = ...) -> contextlib.AbstractAsyncContextManager[Any]: ...

    async def signed_url(self, file_id: str) -> str: ...


def job_tag(job_id: str) -> str:
    """The marker carried in a remote job's name or tags, so that our job can be found there again."""
    return f"fi:{job_id}"


class Adapter(ABC):
    """A remote imputation service of one api_type."""

    api_type: ClassVar[str]

    def __init__(
        self,
        *,
        base_url: str,
        http: httpx.AsyncClient,
        credential: Credential | None,
        files: FileSource,
        timeout_s: float = 30.0,
        transfer_timeout_s: float = 600.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.http = http
        self.credential = credential
        self.files = files
        self.timeout_s = timeout_s
        self.transfer_timeout_s = transfer_timeout_s

    # --- the interface ----------------------------------------------------------------------------------------------

    @abstractmethod
    async def find(self, job_id: str) -> str | None:
        """The remote id of a job submitted earlier for our `job_id`, if the server has one."""

    @abstractmethod
    async def submit(self, submission: Submission) -> str:
        """Submit a job and return its remote id."""

    @abstractmethod
    async def status(self, remote_id: str) -> RemoteStatus:
        """Where the remote job stands."""

    @abstractmethod
    async def outputs(self, remote_id: str) -> list[RemoteOutput]:
        """The result files of a finished job."""

    @abstractmethod
    async def cancel(self, remote_id: str) -> None:
        """Cancel the remote job (a job already finished or gone is not an error)."""

    def auth_headers(self) -> dict[str, str]:
        """The headers that authenticate us on the remote server."""
        return {}

    def download_headers(self) -> dict[str, str]:
        """The headers sent with result downloads."""
        return self.auth_headers()

    @contextlib.asynccontextmanager
    async def download(self, output: RemoteOutput) -> AsyncIterator[httpx.Response]:
        """The streamed body of one result file."""
        url = httpx.URL(output.url)
        if url.scheme not in ("http", "https"):
            raise PermanentRemoteError(f"the server offers {output.name} at a {url.scheme or 'relative'} URL")
        # The remote server chooses the output URLs: our credentials go only to the server itself.
        headers = self.download_headers() if origin(url) == origin(httpx.URL(self.base_url)) else {}
        try:
            async with self.http.stream("GET", url, headers=headers, timeout=self.transfer_timeout_s) as response:
                if response.status_code != 200:
                    await response.aread()
                    raise self.error_for(response, f"download of {output.name}")
                yield response
        except httpx.TimeoutException as exc:
            raise TransientRemoteError(f"the download of {output.name} timed out") from exc
        except httpx.TransportError as exc:
            raise TransientRemoteError(f"the download of {output.name} failed: {type(exc).__name__}") from exc

    # --- helpers ----------------------------------------------------------------------------------------------------

    async def request(self, method: str, path: str, *, what: str, **kwargs: Any) -> httpx.Response:
        """One remote call; transport failures and 5xx become TransientRemoteError, other errors permanent."""
        url = path if path.startswith("http") else f"{self.base_url}{path}"
        headers = {**self.auth_headers(), **kwargs.pop("headers", {})}
        kwargs.setdefault("timeout", self.timeout_s)
        try:
            response = await self.http.request(method, url, headers=headers, **kwargs)
        except httpx.TimeoutException as exc:
            raise TransientRemoteError(f"{what}: the server did not answer in time") from exc
        except httpx.TransportError as exc:
            raise TransientRemoteError(f"{what}: the server could not be reached ({type(exc).__name__})") from exc
        if response.status_code >= 400:
            raise self.error_for(response, what)
        return response

    def error_for(self, response: httpx.Response, what: str) -> RemoteError:
        """The error a failed response stands for."""
        detail = self.error_detail(response)
        code = response.status_code
        suffix = f": {detail}" if detail else ""
        if code >= 500 or code in (408, 429):
            return TransientRemoteError(f"{what}: the server answered HTTP {code}{suffix}")
        if code in (401, 403):
            return PermanentRemoteError(
                f"{what}: the server refused our credentials (HTTP {code}){suffix}; check the API token stored for "
                "this service"
            )
        return PermanentRemoteError(f"{what}: the server answered HTTP {code}{suffix}")

    def error_detail(self, response: httpx.Response) -> str:
        try:
            body = response.json()
        except ValueError:
            return response.text[:200].strip()
        if isinstance(body, dict):
            for key in ("message", "msg", "detail"):
                if body.get(key):
                    return str(body[key])[:300]
        return ""


def origin(url: httpx.URL) -> tuple[str, str, int | None]:
    """Scheme, host and port (the default one filled in): what must match for credentials to be sent."""
    return url.scheme, url.host, url.port or {"http": 80, "https": 443}.get(url.scheme)


def boundary() -> str:
    return f"fi-{secrets.token_hex(16)}"


@dataclass(frozen=True)
class FilePart:
    """A multipart file part whose bytes are streamed from the file manager."""

    name: str
    filename: str
    file_id: str | None = None
    content: bytes | None = None
    content_type: str = "application/octet-stream"


async def multipart_body(
    fields: Sequence[tuple[str, str]], parts: Sequence[FilePart], files: FileSource, marker: str
) -> AsyncIterator[bytes]:
    """A multipart/form-data body, streamed: file contents pass through in chunks, never whole in memory."""
    for name, value in fields:
        yield (f'--{marker}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n').encode() + value.encode()
        yield b"\r\n"
    for part in parts:
        yield (
            f'--{marker}\r\nContent-Disposition: form-data; name="{part.name}"; filename="{part.filename}"\r\n'
            f"Content-Type: {part.content_type}\r\n\r\n"
        ).encode()
        if part.content is not None:
            yield part.content
        else:
            assert part.file_id is not None
            async with files.open_file(part.file_id) as response:
                async for chunk in response.aiter_bytes(1 << 16):
                    yield chunk
        yield b"\r\n"
    yield f"--{marker}--\r\n".encode()
