"""The file manager's domain logic: quotas, recording uploads, listing, deletion, retention and signed links."""

from __future__ import annotations

import hashlib
import hmac
import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Select, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from microservices.common.auth import Principal
from microservices.common.errors import AppError, Forbidden
from microservices.common.events import FILE_UPLOAD_COMPLETED, emit
from microservices.common.pagination import PageParams, paginate
from microservices.file_manager.config import Settings
from microservices.file_manager.models import PURPOSES, StoredFile
from microservices.file_manager.storage import Storage
from microservices.file_manager.upload import ReceivedUpload, UploadLimits

logger = logging.getLogger(__name__)

PRODUCER = "file_manager"


class InvalidField(AppError):
    status_code = 422
    code = "validation_error"


class InvalidVcf(AppError):
    status_code = 422
    code = "invalid_vcf"


class FileExpired(AppError):
    status_code = 410
    code = "file_expired"


@dataclass(frozen=True)
class UploadFields:
    """The form fields of an upload, checked."""

    owner_id: int
    purpose: str
    job_id: str | None


@dataclass(frozen=True)
class FileFilters:
    """Filters of a file list."""

    purpose: str | None = None
    job_id: str | None = None
    status: str | None = None
    owner_id: int | None = None


def may_read_any(principal: Principal) -> bool:
    """Admins and service accounts may read every file; anyone else only their own."""
    return principal.is_service or principal.is_admin


def may_access(principal: Principal, stored_file: StoredFile) -> bool:
    """True when `principal` may read, sign or delete `stored_file`."""
    return may_read_any(principal) or principal.user_id == stored_file.owner_id


async def storage_used(*, session: AsyncSession, owner_id: int) -> int:
    """Bytes held by the owner's files that still have their bytes."""
    used = await session.scalar(
        select(func.coalesce(func.sum(StoredFile.size_bytes), 0)).where(
            StoredFile.owner_id == owner_id, StoredFile.status == "available"
        )
    )
    return int(used or 0)


async def upload_limits(*, session: AsyncSession, principal: Principal, settings: Settings) -> UploadLimits:
    """How large the caller's next upload may be: the upload limit, and for a user the rest of their quota."""
    if principal.is_service or principal.user_id is None:
        # Results collected for a user by the job processor are not refused for the user's quota.
        return UploadLimits(max_upload_bytes=settings.service_max_upload_bytes)
    used = await storage_used(session=session, owner_id=principal.user_id)
    return UploadLimits(
        max_upload_bytes=settings.max_upload_bytes,
        quota_left_bytes=settings.user_quota_bytes - used,
        quota_bytes=settings.user_quota_bytes,
    )


def upload_fields(*, principal: Principal, fields: dict[str, str]) -> UploadFields:
    """The owner, purpose and job of an upload from its form fields and the caller."""
    purpose = fields.get("purpose") or "input"
    if purpose not in PURPOSES:
        raise InvalidField(f"purpose must be one of {', '.join(PURPOSES)}, not {purpose!r}.")
    job_id = fields.get("job_id") or None
    if job_id is not None and len(job_id) > 64:
        raise InvalidField("job_id is longer than 64 characters.")
    raw_owner = fields.get("owner_id") or None
    if principal.is_service:
        if raw_owner is None or not raw_owner.isdigit():
            raise InvalidField("A service account uploads on a user's behalf: send the user's id in owner_id.")
        return UploadFields(owner_id=int(raw_owner), purpose=purpose, job_id=job_id)
    if principal.user_id is None:
        raise Forbidden("Only users and the platform's services may upload files.")
    if raw_owner is not None and raw_owner != str(principal.user_id):
        raise Forbidden("Only the platform's services may upload files on another user's behalf.")
    # A result skips the VCF checks and a job id links the file to someone's job: both are the job processor's.
    if purpose != "input" or job_id is not None:
        raise Forbidden("Only the platform's services may upload result files or link a file to a job.")
    return UploadFields(owner_id=principal.user_id, purpose=purpose, job_id=None)


def _retention(settings: Settings, purpose: str) -> timedelta | None:
    days = settings.result_retention_days if purpose == "result" else settings.input_retention_days
    return None if days is None else timedelta(days=days)


async def _lock_owner(session: AsyncSession, owner_id: int) -> None:
    # Serialises concurrent uploads of one owner for the quota check, until the transaction ends.
    await session.execute(
        text("SELECT pg_advisory_xact_lock(hashtextextended('file_manager.quota', :owner))"),
        {"owner": owner_id},
    )


async def record_upload(
    *, session: AsyncSession, principal: Principal, received: ReceivedUpload, settings: Settings
) -> StoredFile:
    """Check a received upload, commit its bytes and record it with its `file.upload.completed` event."""
    fields = upload_fields(principal=principal, fields=received.fields)
    if fields.purpose == "input" and received.vcf_error is not None:
        raise InvalidVcf(f"{received.filename} is not a valid VCF. {received.vcf_error}")
    if not principal.is_service:
        await _lock_owner(session, fields.owner_id)
        used = await storage_used(session=session, owner_id=fields.owner_id)
        limits = UploadLimits(
            max_upload_bytes=settings.max_upload_bytes,
            quota_left_bytes=settings.user_quota_bytes - used,
            quota_bytes=settings.user_quota_bytes,
        )
        if received.size_bytes > limits.effective_bytes:
            raise limits.refuse()
    retention = _retention(settings, fields.purpose)
    now = datetime.now(UTC)
    stored_file = StoredFile(
        id=uuid.UUID(received.pending.key.rsplit("/", 1)[-1]),
        owner_id=fields.owner_id,
        uploaded_by=principal.subject,
        job_id=fields.job_id,
        purpose=fields.purpose,
        status="available",
        filename=received.filename,
        content_type=received.content_type,
        storage_key=received.pending.key,
        size_bytes=received.size_bytes,
        sha256=received.sha256,
        md5=received.md5,
        vcf=received.vcf.as_dict() if received.vcf is not None else None,
        created_at=now,
        expires_at=now + retention if retention is not None else None,
    )
    session.add(stored_file)
    await session.flush()
    await emit(
        session,
        topic=FILE_UPLOAD_COMPLETED,
        payload={
            "file_id": str(stored_file.id),
            "user_id": stored_file.owner_id,
            "filename": stored_file.filename,
            "size_bytes": stored_file.size_bytes,
            "sha256": stored_file.sha256,
        },
        producer=PRODUCER,
    )
    # The bytes become visible last: a failure above leaves only a temporary file, which the caller discards.
    await received.pending.commit()
    return stored_file


async def get_file(*, session: AsyncSession, file_id: uuid.UUID) -> StoredFile | None:
    """The file with this id, or None."""
    return await session.get(StoredFile, file_id)


def _filtered(statement: Select[Any], filters: FileFilters) -> Select[Any]:
    if filters.purpose is not None:
        statement = statement.where(StoredFile.purpose == filters.purpose)
    if filters.job_id is not None:
        statement = statement.where(StoredFile.job_id == filters.job_id)
    if filters.status is not None:
        statement = statement.where(StoredFile.status == filters.status)
    if filters.owner_id is not None:
        statement = statement.where(StoredFile.owner_id == filters.owner_id)
    return statement


async def list_files(
    *, session: AsyncSession, principal: Principal, filters: FileFilters, params: PageParams
) -> tuple[list[StoredFile], int]:
    """One page of the files the caller may see (a user's own; any owner's for admins and services)."""
    if not may_read_any(principal):
        filters = FileFilters(
            purpose=filters.purpose, job_id=filters.job_id, status=filters.status, owner_id=principal.user_id or -1
        )
    statement = _filtered(select(StoredFile), filters).order_by(StoredFile.created_at.desc(), StoredFile.id)
    return await paginate(session, statement, params)


async def delete_file(*, session: AsyncSession, stored_file: StoredFile) -> str:
    """Remove a file's record; the caller deletes the bytes at the returned key once that is committed."""
    await session.delete(stored_file)
    await session.flush()
    return stored_file.storage_key


async def expire_due_files(
    *, session: AsyncSession, now: datetime | None = None, batch_size: int = 500
) -> list[StoredFile]:
    """Mark files past their `expires_at` expired, metadata kept; the caller deletes their bytes after the commit."""
    now = now or datetime.now(UTC)
    due = (
        await session.scalars(
            select(StoredFile)
            .where(StoredFile.status == "available", StoredFile.expires_at <= now)
            .order_by(StoredFile.expires_at)
            .limit(batch_size)
            # Replicas running the same task share the work instead of waiting on each other.
            .with_for_update(skip_locked=True)
        )
    ).all()
    for stored_file in due:
        stored_file.status = "expired"
        stored_file.expired_at = now
    await session.flush()
    return list(due)


# --- signed download links ------------------------------------------------------------------------------------


class InvalidSignature(AppError):
    status_code = 403
    code = "invalid_signature"


def _signature(*, file_id: uuid.UUID, expires: int, key: str) -> str:
    message = f"download:{file_id}:{expires}".encode()
    return hmac.new(key.encode(), message, hashlib.sha256).hexdigest()


def signed_download_url(
    *, file_id: uuid.UUID, settings: Settings, ttl_s: int | None = None, now: datetime | None = None
) -> tuple[str, datetime]:
    """An absolute download URL that works without a bearer token until it expires, and when that is."""
    ttl = min(ttl_s or settings.signed_url_ttl_s, settings.signed_url_max_ttl_s)
    expires_at = (now or datetime.now(UTC)).replace(microsecond=0) + timedelta(seconds=ttl)
    expires = int(expires_at.timestamp())
    signature = _signature(file_id=file_id, expires=expires, key=settings.signing_key.get_secret_value())
    url = f"{settings.resolved_public_url}/files/{file_id}/download?expires={expires}&signature={signature}"
    return url, expires_at


def check_signature(
    *, file_id: uuid.UUID, expires: int, signature: str, settings: Settings, now: datetime | None = None
) -> None:
    """Raise unless `signature` is this file manager's for `file_id` and `expires`, and it has not expired."""
    expected = _signature(file_id=file_id, expires=expires, key=settings.signing_key.get_secret_value())
    if not hmac.compare_digest(expected, signature):
        raise InvalidSignature("The download link's signature is not valid.")
    if (now or datetime.now(UTC)).timestamp() > expires:
        raise InvalidSignature("The download link has expired; ask for a new one.", code="link_expired")


async def remove_orphans(*, session: AsyncSession, storage: Storage, older_than_s: float) -> int:
    """Remove stored bytes that no available file names (an upload whose transaction failed after its rename)."""
    keys = await storage.keys(older_than_s=older_than_s)
    removed = 0
    for start in range(0, len(keys), 1000):
        batch = keys[start : start + 1000]
        # Bytes of an expired file are orphans too: retention stopped between its commit and their deletion.
        statement = select(StoredFile.storage_key).where(
            StoredFile.storage_key.in_(batch), StoredFile.status == "available"
        )
        known = set((await session.scalars(statement)).all())
        for key in batch:
            if key not in known and await storage.delete(key):
                logger.warning("removed orphan bytes %s (no file record)", key)
                removed += 1
    return removed


async def run_retention(
    *, session: AsyncSession, storage: Storage, settings: Settings, now: datetime | None = None
) -> tuple[list[uuid.UUID], int]:
    """One retention run: expire due files, remove uploads abandoned mid-way and bytes without a record.

    Commits the expiry before deleting any bytes, so that a failed commit never leaves a record without its bytes.
    Returns the ids of the files expired and how many leftovers were removed.
    """
    expired = await expire_due_files(session=session, now=now)
    await session.commit()
    # A crash from here on leaves the bytes of expired files behind; `remove_orphans` of a later run deletes them.
    for stored_file in expired:
        try:
            await storage.delete(stored_file.storage_key)
        except OSError as exc:
            logger.warning("could not delete the bytes of expired file %s: %s", stored_file.id, exc)
    swept = await storage.sweep_incomplete(older_than_s=settings.stale_upload_after_s)
    swept += await remove_orphans(session=session, storage=storage, older_than_s=settings.stale_upload_after_s)
    if expired or swept:
        logger.info("retention: %d files expired, %d abandoned uploads removed", len(expired), swept)
    return [stored_file.id for stored_file in expired], swept
