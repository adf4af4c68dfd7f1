"""Endpoints of the file manager."""

from __future__ import annotations

import base64
import uuid
from typing import Annotated, Any, Literal
from urllib.parse import quote

from fastapi import APIRouter, Body, Depends, Query, Request, Response
from fastapi.responses import StreamingResponse
from starlette.requests import ClientDisconnect

from microservices.common.auth import CurrentPrincipal, require_roles
from microservices.common.db import SessionDep
from microservices.common.errors import AppError, BadRequest
from microservices.common.pagination import Page, PageParamsDep
from microservices.file_manager import service
from microservices.file_manager.dependencies import DownloadableFile, SettingsDep, StorageDep, ValidFile
from microservices.file_manager.models import StoredFile
from microservices.file_manager.schemas import CleanupRead, FileRead, SignedUrlCreate, SignedUrlRead
from microservices.file_manager.storage import Storage, storage_key
from microservices.file_manager.upload import check_declared_length, multipart_boundary, receive_upload

router = APIRouter(tags=["files"])

_UPLOAD_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {"type": "string", "format": "binary"},
                        "purpose": {
                            "type": "string",
                            "enum": ["input", "result"],
                            "default": "input",
                            "description": "`result`: service accounts only",
                        },
                        "job_id": {"type": "string", "description": "Service accounts only"},
                        "owner_id": {"type": "integer", "description": "Service accounts only"},
                    },
                }
            }
        },
    }
}


class RangeNotSatisfiable(AppError):
    status_code = 416
    code = "range_not_satisfiable"


def _read(stored_file: StoredFile) -> FileRead:
    return FileRead.model_validate(stored_file)


@router.post(
    "/files/upload",
    status_code=201,
    response_model=FileRead,
    openapi_extra=_UPLOAD_BODY,
    responses={413: {"description": "Over the upload limit or the owner's quota"}, 422: {"description": "Not a VCF"}},
)
async def upload_file(
    request: Request, principal: CurrentPrincipal, session: SessionDep, storage: StorageDep, settings: SettingsDep
) -> FileRead:
    """Upload a file (multipart field `file`), streamed to storage with its checksums and VCF checks."""
    boundary = multipart_boundary(request.headers.get("content-type"))
    limits = await service.upload_limits(session=session, principal=principal, settings=settings)
    check_declared_length(request.headers.get("content-length"), limits)
    # Hand the connection back to the pool while the body streams: an upload can take minutes.
    await session.commit()
    pending = await storage.begin(storage_key(uuid.uuid4()))
    try:
        received = await receive_upload(request.stream(), boundary=boundary, limits=limits, pending=pending)
    except ClientDisconnect as exc:
        raise BadRequest("The client went away before the upload finished.", code="incomplete_upload") from exc
    try:
        stored_file = await service.record_upload(
            session=session, principal=principal, received=received, settings=settings
        )
    except BaseException:
        await pending.discard()
        raise
    return _read(stored_file)


@router.get("/files", response_model=Page[FileRead])
async def list_files(
    principal: CurrentPrincipal,
    session: SessionDep,
    params: PageParamsDep,
    purpose: Literal["input", "result"] | None = None,
    job_id: Annotated[str | None, Query(max_length=64)] = None,
    status: Literal["available", "expired"] | None = None,
    owner_id: Annotated[int | None, Query(description="Admins and services only")] = None,
) -> Page[FileRead]:
    """The caller's files, newest first (admins and services may filter by owner)."""
    filters = service.FileFilters(purpose=purpose, job_id=job_id, status=status, owner_id=owner_id)
    items, total = await service.list_files(session=session, principal=principal, filters=filters, params=params)
    return Page[FileRead](items=[_read(f) for f in items], total=total, page=params.page, page_size=params.page_size)


@router.get("/jobs/{job_id}/files", response_model=Page[FileRead])
async def list_job_files(
    job_id: str, principal: CurrentPrincipal, session: SessionDep, params: PageParamsDep
) -> Page[FileRead]:
    """The files linked to a job (inputs and results) that the caller may see."""
    filters = service.FileFilters(job_id=job_id)
    items, total = await service.list_files(session=session, principal=principal, filters=filters, params=params)
    return Page[FileRead](items=[_read(f) for f in items], total=total, page=params.page, page_size=params.page_size)


@router.post(
    "/files/cleanup",
    response_model=CleanupRead,
    dependencies=[Depends(require_roles("admin"))],
    responses={403: {"description": "Admins and services only"}},
)
async def run_cleanup(session: SessionDep, storage: StorageDep, settings: SettingsDep) -> CleanupRead:
    """Run retention now: expire due files (bytes deleted, metadata kept) and remove abandoned uploads."""
    expired, swept = await service.run_retention(session=session, storage=storage, settings=settings)
    return CleanupRead(expired=len(expired), file_ids=expired, leftovers_removed=swept)


@router.get("/files/{file_id}", response_model=FileRead)
async def get_file(stored_file: ValidFile) -> FileRead:
    """One file's metadata."""
    return _read(stored_file)


@router.delete("/files/{file_id}", status_code=204, response_class=Response)
async def delete_file(stored_file: ValidFile, session: SessionDep, storage: StorageDep) -> Response:
    """Delete a file and its bytes."""
    key = await service.delete_file(session=session, stored_file=stored_file)
    # The bytes go only once the record's deletion is committed; a crash in between leaves orphan bytes for retention.
    await session.commit()
    await storage.delete(key)
    return Response(status_code=204)


@router.post("/files/{file_id}/signed-url", response_model=SignedUrlRead)
async def create_signed_url(
    stored_file: ValidFile,
    settings: SettingsDep,
    options: Annotated[SignedUrlCreate | None, Body()] = None,
) -> SignedUrlRead:
    """A download URL on the file manager that needs no bearer token until it expires."""
    if stored_file.status != "available":
        raise service.FileExpired(f"The bytes of {stored_file.filename} were removed when it expired.")
    url, expires_at = service.signed_download_url(
        file_id=stored_file.id, settings=settings, ttl_s=options.expires_in_s if options else None
    )
    return SignedUrlRead(url=url, expires_at=expires_at)


def _byte_range(request: Request, stored_file: StoredFile) -> tuple[int, int] | None:
    """The single byte range asked for, as [start, end); None for the whole file."""
    header = request.headers.get("range")
    if not header:
        return None
    if_range = request.headers.get("if-range")
    if if_range is not None and if_range.strip() != f'"{stored_file.sha256}"':
        return None  # the client's copy is of other bytes: send everything
    unit, _, spec = header.partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None  # several ranges are not served; RFC 9110 allows answering with the whole file
    first, _, last = spec.strip().partition("-")
    size = stored_file.size_bytes
    try:
        if not first:
            suffix = int(last)
            if suffix <= 0:
                raise RangeNotSatisfiable(
                    "An empty suffix range selects nothing.", headers={"Content-Range": f"bytes */{size}"}
                )
            start, end = max(0, size - suffix), size
        else:
            start = int(first)
            end = min(int(last) + 1, size) if last else size
            if int(last or start) < start:
                return None  # an invalid range is ignored (RFC 9110 §14.2)
    except ValueError:
        return None
    if start >= size or start < 0:
        raise RangeNotSatisfiable(
            f"The range starts beyond the file's {size} bytes.", headers={"Content-Range": f"bytes */{size}"}
        )
    return start, end


def _content_disposition(filename: str) -> str:
    fallback = filename.encode("ascii", errors="replace").decode().replace('"', "_").replace("?", "_")
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename)}"


async def _prepare_download(
    request: Request, stored_file: StoredFile, storage: Storage
) -> tuple[int, tuple[int, int], dict[str, str]]:
    """The status, byte range [start, end) and headers of a download."""
    if stored_file.status != "available":
        raise service.FileExpired(f"The bytes of {stored_file.filename} were removed when it expired.")
    if not await storage.exists(stored_file.storage_key):
        raise service.FileExpired(f"The bytes of {stored_file.filename} are missing.", code="file_missing")
    size = stored_file.size_bytes
    byte_range = _byte_range(request, stored_file)
    start, end = byte_range or (0, size)
    sha256_b64 = base64.b64encode(bytes.fromhex(stored_file.sha256)).decode()
    headers = {
        "Accept-Ranges": "bytes",
        "Content-Length": str(end - start),
        "Content-Type": stored_file.content_type,
        "Content-Disposition": _content_disposition(stored_file.filename),
        "ETag": f'"{stored_file.sha256}"',
        # Of the whole file, also on a partial answer, so that a client can check what it reassembles.
        "X-Checksum-SHA256": stored_file.sha256,
        "X-Checksum-MD5": stored_file.md5,
        "Digest": f"sha-256={sha256_b64}",
        "Repr-Digest": f"sha-256=:{sha256_b64}:",
    }
    if byte_range is not None:
        headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
    return (206 if byte_range is not None else 200), (start, end), headers


@router.get(
    "/files/{file_id}/download",
    response_class=StreamingResponse,
    responses={206: {"description": "Partial content"}, 410: {"description": "Expired"}, 416: {"description": ""}},
)
async def download_file(request: Request, stored_file: DownloadableFile, storage: StorageDep) -> StreamingResponse:
    """Stream a file's bytes (single-range requests honoured), with its checksums in the headers."""
    status_code, (start, end), headers = await _prepare_download(request, stored_file, storage)
    return StreamingResponse(
        storage.read(stored_file.storage_key, start=start, end=end), status_code=status_code, headers=headers
    )


@router.head("/files/{file_id}/download", include_in_schema=False)
async def download_file_head(request: Request, stored_file: DownloadableFile, storage: StorageDep) -> Response:
    """The headers of a download (size, checksums, range support), without its bytes."""
    status_code, _, headers = await _prepare_download(request, stored_file, storage)
    return Response(status_code=status_code, headers=headers)
