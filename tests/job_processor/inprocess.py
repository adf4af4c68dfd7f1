"""In-process peers and remote servers for the worker-side tests: one transport routes each request to the
registry/user-service stub, an in-process file manager stand-in, an in-process Michigan fake, or the network."""

from __future__ import annotations

import contextlib
import hashlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

from microservices.job_processor.config import Settings
from microservices.job_processor.peers import Peers
from microservices.job_processor.processing import SharedTokenProvider, ssl_context
from tests.job_processor.stubs import PeerStub


@dataclass
class FileManagerStub:
    """Serves input files from disk and keeps uploaded results in memory, with their checksums."""

    inputs: dict[str, Path] = field(default_factory=dict)
    results: dict[str, dict[str, Any]] = field(default_factory=dict)
    corrupt_uploads: bool = False

    def app(self) -> Starlette:
        async def download(request: Request) -> Response:
            path = self.inputs.get(request.path_params["file_id"])
            if path is None:
                return JSONResponse({"error": "not_found", "detail": "no file"}, status_code=404)
            return FileResponse(path)

        async def upload(request: Request) -> Response:
            form = await request.form()
            upload = form["file"]
            assert isinstance(upload, UploadFile)
            content = await upload.read()
            if self.corrupt_uploads:
                content = content[:-1]
            file_id = str(uuid.uuid4())
            record: dict[str, Any] = {
                "id": file_id,
                "filename": upload.filename,
                "size_bytes": len(content),
                "sha256": hashlib.sha256(content).hexdigest(),
                "md5": hashlib.md5(content, usedforsecurity=False).hexdigest(),
                "owner_id": int(str(form["owner_id"])),
                "job_id": str(form["job_id"]),
                "purpose": str(form["purpose"]),
                "content": content,
            }
            self.results[file_id] = record
            return JSONResponse({k: v for k, v in record.items() if k != "content"}, status_code=201)

        return Starlette(
            routes=[Route("/files/{file_id}/download", download), Route("/files/upload", upload, methods=["POST"])]
        )


class RoutingTransport(httpx.AsyncBaseTransport):
    """Sends each request to the transport of its host:port, or to the network."""

    def __init__(self, routes: dict[str, httpx.AsyncBaseTransport]) -> None:
        self.routes = routes
        self.network = httpx.AsyncHTTPTransport(verify=ssl_context())

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        key = f"{request.url.host}:{request.url.port}" if request.url.port else request.url.host
        transport = self.routes.get(key) or self.routes.get(request.url.host) or self.network
        return await transport.handle_async_request(request)


def peers_factory(stub: PeerStub, files: FileManagerStub, remotes: dict[str, Any]) -> Any:
    """A `processing.peers_factory` whose peers and remote servers answer in process."""

    @contextlib.asynccontextmanager
    async def factory(settings: Settings) -> AsyncIterator[Peers]:
        routes: dict[str, httpx.AsyncBaseTransport] = {
            _host(settings.user_service_url): httpx.MockTransport(stub.handler),
            _host(settings.service_registry_url): httpx.MockTransport(stub.handler),
            _host(settings.file_manager_url): httpx.ASGITransport(app=files.app()),
        }
        for host, app in remotes.items():
            routes[host] = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=RoutingTransport(routes)) as http:
            tokens = SharedTokenProvider(
                http=http,
                token_url=f"{settings.user_service_url}/auth/token",
                client_id="job_processor",
                client_secret="s",
            )
            yield Peers(settings=settings, http=http, tokens=tokens)

    return factory


def _host(url: str) -> str:
    parsed = httpx.URL(url)
    return f"{parsed.host}:{parsed.port}" if parsed.port else parsed.host
