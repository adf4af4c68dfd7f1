"""Receiving an upload: the multipart body parsed as it streams, written to storage, hashed and checked on the way.

Starlette's `request.form()` spools each file to a temporary file and the handler then copies it: every byte
is written twice. Here the body is pushed through python-multipart's push parser chunk by chunk; the `file`
part's bytes go straight to the storage backend in blocks of about 1 MB while SHA-256, MD5 and the VCF
inspector read the same block in a worker thread, so the file is written once and never held whole in memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import unicodedata
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import anyio
import anyio.to_thread
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from microservices.common.errors import AppError, BadRequest, PayloadTooLarge
from microservices.file_manager.storage import PendingObject
from microservices.file_manager.vcf import VcfError, VcfInspector, VcfSummary

logger = logging.getLogger(__name__)

MB = 1024 * 1024
BLOCK_BYTES = 1024 * 1024
FILE_FIELD = "file"
FORM_FIELDS = frozenset({"purpose", "job_id", "owner_id"})
MAX_FIELD_BYTES = 1024
MAX_PARTS = 16
# Part headers and small fields around the file; a declared body larger than the limit plus this is refused
# before a byte of it is read.
MULTIPART_OVERHEAD_BYTES = 64 * 1024


class UnsupportedMediaType(AppError):
    status_code = 415
    code = "unsupported_media_type"


def megabytes(size: int) -> str:
    """A size in MB for a message: `500`, `0.06`."""
    return f"{size / MB:.2f}".rstrip("0").rstrip(".")


@dataclass(frozen=True)
class UploadLimits:
    """How many bytes the file may have, and why: the upload limit, or what is left of the owner's quota."""

    max_upload_bytes: int
    quota_left_bytes: int | None = None
    quota_bytes: int | None = None

    @property
    def effective_bytes(self) -> int:
        if self.quota_left_bytes is None:
            return self.max_upload_bytes
        return min(self.max_upload_bytes, self.quota_left_bytes)

    def refuse(self) -> PayloadTooLarge:
        """The 413 that names the limit reached."""
        if self.quota_left_bytes is not None and self.quota_left_bytes < self.max_upload_bytes:
            quota, left = megabytes(self.quota_bytes or 0), megabytes(max(0, self.quota_left_bytes))
            return PayloadTooLarge(
                f"The upload would exceed your storage quota of {quota} MB ({left} MB left); "
                "delete files you no longer need.",
                code="quota_exceeded",
            )
        return PayloadTooLarge(
            f"The file is larger than the upload limit of {megabytes(self.max_upload_bytes)} MB.",
            code="file_too_large",
        )


@dataclass
class ReceivedUpload:
    """A file received and stored (not yet committed) with its form fields, checksums and VCF verdict."""

    pending: PendingObject
    filename: str
    content_type: str
    size_bytes: int
    sha256: str
    md5: str
    fields: dict[str, str]
    vcf: VcfSummary | None
    vcf_error: VcfError | None


def clean_filename(raw: str) -> str:
    """The client's file name reduced to a display name: no directories, no control characters, 255 bytes."""
    name = raw.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in unicodedata.normalize("NFC", name) if unicodedata.category(ch)[0] != "C").strip()
    if name in ("", ".", ".."):
        name = "upload"
    while len(name.encode()) > 255:
        name = name[:-1]
    return name


def check_declared_length(content_length: str | None, limits: UploadLimits) -> None:
    """Refuse a body whose declared size cannot fit, before reading any of it."""
    declared = int(content_length) if content_length and content_length.isdigit() else None
    if declared is not None and declared - MULTIPART_OVERHEAD_BYTES > limits.effective_bytes:
        raise limits.refuse()


class _Digest:
    """SHA-256, MD5 and the VCF inspector over the same blocks."""

    def __init__(self) -> None:
        self.sha256 = hashlib.sha256()
        self.md5 = hashlib.md5(usedforsecurity=False)
        self.inspector: VcfInspector | None = VcfInspector()
        self.error: VcfError | None = None

    def inspect(self, block: bytes | bytearray) -> None:
        if self.inspector is not None:
            try:
                self.inspector.feed(block)
            except VcfError as exc:
                # Keep reading the body: the client then gets the 4xx answer rather than a broken pipe.
                self.error, self.inspector = exc, None

    def finish(self) -> VcfSummary | None:
        if self.inspector is None:
            return None
        try:
            return self.inspector.finish()
        except VcfError as exc:
            self.error = exc
            return None


@dataclass
class _Part:
    name: str = ""
    filename: str | None = None
    content_type: str = ""
    header_field: bytearray = field(default_factory=bytearray)
    header_value: bytearray = field(default_factory=bytearray)
    headers: dict[bytes, bytes] = field(default_factory=dict)
    value: bytearray = field(default_factory=bytearray)


class MultipartUpload:
    """Parses one `multipart/form-data` body as it streams and stores its single `file` part."""

    def __init__(self, *, boundary: bytes, limits: UploadLimits, pending: PendingObject) -> None:
        self.limits = limits
        self.pending = pending
        self.fields: dict[str, str] = {}
        self.filename: str | None = None
        self.content_type = "application/octet-stream"
        self.size_bytes = 0
        self._digest = _Digest()
        self._block = bytearray()
        self._processing: asyncio.Future[None] | None = None
        self._part: _Part | None = None
        self._parts = 0
        self._in_file = False
        self._file_done = False
        self._ended = False
        self._events: list[tuple[str, bytes]] = []
        self._parser = MultipartParser(
            boundary,
            {
                "on_part_begin": lambda: self._events.append(("part_begin", b"")),
                "on_header_field": lambda d, s, e: self._events.append(("header_field", d[s:e])),
                "on_header_value": lambda d, s, e: self._events.append(("header_value", d[s:e])),
                "on_header_end": lambda: self._events.append(("header_end", b"")),
                "on_headers_finished": lambda: self._events.append(("headers_finished", b"")),
                "on_part_data": lambda d, s, e: self._events.append(("part_data", d[s:e])),
                "on_part_end": lambda: self._events.append(("part_end", b"")),
                "on_end": lambda: self._events.append(("end", b"")),
            },
        )

    async def feed(self, chunk: bytes) -> None:
        """Parse the next piece of the body, storing file data as it comes."""
        try:
            self._parser.write(chunk)
        except MultipartParseError as exc:
            raise BadRequest(f"The multipart body is malformed: {exc}", code="malformed_multipart") from exc
        events, self._events = self._events, []
        for kind, data in events:
            await self._handle(kind, data)

    async def _handle(self, kind: str, data: bytes) -> None:
        if kind == "part_data":
            if self._in_file:
                await self._file_data(data)
            else:
                self._field_data(data)
            return
        part = self._part
        if kind == "part_begin":
            self._parts += 1
            if self._parts > MAX_PARTS:
                raise BadRequest(f"The multipart body has more than {MAX_PARTS} parts.", code="malformed_multipart")
            self._part = _Part()
        elif part is None:
            if kind == "end":
                self._ended = True
        elif kind == "header_field":
            part.header_field += data
        elif kind == "header_value":
            part.header_value += data
        elif kind == "header_end":
            part.headers[bytes(part.header_field).lower()] = bytes(part.header_value)
            part.header_field.clear()
            part.header_value.clear()
        elif kind == "headers_finished":
            self._start_part(part)
        elif kind == "part_end":
            await self._end_part(part)
            self._part = None

    def _start_part(self, part: _Part) -> None:
        disposition, options = parse_options_header(part.headers.get(b"content-disposition"))
        if disposition != b"form-data" or b"name" not in options:
            raise BadRequest("A part of the multipart body has no form-data name.", code="malformed_multipart")
        part.name = options[b"name"].decode("utf-8", errors="replace")
        if b"filename" in options:
            part.filename = options[b"filename"].decode("utf-8", errors="replace")
        if part.name == FILE_FIELD:
            if self.filename is not None:
                raise BadRequest("Send one file per upload, in the `file` field.", code="several_files")
            self.filename = clean_filename(part.filename or "upload")
            content_type = part.headers.get(b"content-type", b"").decode("latin-1").strip()
            if content_type and len(content_type) <= 255:
                self.content_type = content_type
            if self.fields.get("purpose") == "result":
                # Results are not checked (an imputed VCF can be many gigabytes of text to inflate, and a Michigan
                # result is an encrypted zip): they are hashed and stored only.
                self._digest.inspector = None
            self._in_file = True

    def _field_data(self, data: bytes) -> None:
        part = self._part
        if part is None or part.name not in FORM_FIELDS:
            return  # other fields are ignored, never accumulated
        part.value += data
        if len(part.value) > MAX_FIELD_BYTES:
            raise BadRequest(f"The form field `{part.name}` is longer than {MAX_FIELD_BYTES} bytes.")

    async def _file_data(self, data: bytes) -> None:
        self.size_bytes += len(data)
        if self.size_bytes > self.limits.effective_bytes:
            raise self.limits.refuse()
        self._block += data
        if len(self._block) >= BLOCK_BYTES:
            await self._flush()

    async def _flush(self, *, last: bool = False) -> None:
        block, self._block = self._block, bytearray()
        # One block is processed while the next one arrives: receiving overlaps hashing and writing, and at
        # most two blocks are held. Writes stay in order because a block starts only after the one before.
        await self.drain()
        if block:
            self._processing = asyncio.ensure_future(self._process(bytes(block)))
        if last:
            await self.drain()

    async def _process(self, block: bytes) -> None:
        # The two hashes, the VCF checks and the disk write each run in a worker thread, side by side (hashlib
        # and file writes release the GIL); all only read the block.
        async with anyio.create_task_group() as group:
            group.start_soon(anyio.to_thread.run_sync, self._digest.sha256.update, block)
            group.start_soon(anyio.to_thread.run_sync, self._digest.md5.update, block)
            group.start_soon(anyio.to_thread.run_sync, self._digest.inspect, block)
            group.start_soon(self.pending.write, block)

    async def drain(self) -> None:
        """Wait for the block in progress, if any."""
        processing, self._processing = self._processing, None
        if processing is not None:
            await processing

    async def _end_part(self, part: _Part) -> None:
        if part.name == FILE_FIELD and self._in_file:
            await self._flush(last=True)
            self._in_file = False
            self._file_done = True
        elif part.name in FORM_FIELDS:
            self.fields[part.name] = bytes(part.value).decode("utf-8", errors="replace").strip()

    async def finish(self) -> ReceivedUpload:
        """Check the body was complete and return what was received."""
        if not self._file_done:
            if self._in_file or self.filename is not None:
                raise BadRequest("The upload ended before the whole file arrived.", code="incomplete_upload")
            raise BadRequest("The multipart body has no `file` field.", code="missing_file")
        if not self._ended:
            raise BadRequest("The multipart body ended without its closing boundary.", code="incomplete_upload")
        vcf = await anyio.to_thread.run_sync(self._digest.finish)
        return ReceivedUpload(
            pending=self.pending,
            filename=self.filename or "upload",
            content_type=self.content_type,
            size_bytes=self.size_bytes,
            sha256=self._digest.sha256.hexdigest(),
            md5=self._digest.md5.hexdigest(),
            fields=self.fields,
            vcf=vcf,
            vcf_error=self._digest.error,
        )


def multipart_boundary(content_type: str | None) -> bytes:
    """The boundary of a `multipart/form-data` Content-Type, or 415."""
    media_type, options = parse_options_header(content_type)
    if media_type != b"multipart/form-data":
        raise UnsupportedMediaType("Upload the file as multipart/form-data in the field `file`.")
    boundary = options.get(b"boundary")
    if not boundary:
        raise BadRequest("The multipart Content-Type has no boundary.", code="malformed_multipart")
    return boundary


async def receive_upload(
    body: AsyncIterator[bytes], *, boundary: bytes, limits: UploadLimits, pending: PendingObject
) -> ReceivedUpload:
    """Stream `body` into `pending`; on any failure the partial object is discarded before the error propagates."""
    upload = MultipartUpload(boundary=boundary, limits=limits, pending=pending)
    try:
        async for chunk in body:
            if chunk:
                await upload.feed(chunk)
        return await upload.finish()
    except BaseException:
        with anyio.CancelScope(shield=True):
            # A write still running must end before its file is removed.
            with contextlib.suppress(Exception):
                await upload.drain()
            await pending.discard()
        raise
