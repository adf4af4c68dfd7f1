"""Tables of the file manager."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, CheckConstraint, DateTime, Index, String, Uuid, func
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from microservices.common.db import new_metadata
from microservices.common.events import outbox_table

PURPOSES = ("input", "result")
STATUSES = ("available", "expired")


class Base(DeclarativeBase):
    metadata = new_metadata()


# `file.upload.completed` is written here in the upload's transaction and relayed to Redis Streams.
outbox_table(Base.metadata)


class StoredFile(Base):
    """One stored file: where its bytes are, their checksums, who owns it, and what the VCF checks found."""

    __tablename__ = "stored_file"
    __table_args__ = (
        CheckConstraint(f"purpose IN {PURPOSES}", name="purpose"),
        CheckConstraint(f"status IN {STATUSES}", name="status"),
        Index("ix_stored_file_owner_id_created_at", "owner_id", "created_at"),
        Index("ix_stored_file_job_id", "job_id"),
        Index("ix_stored_file_status_expires_at", "status", "expires_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    owner_id: Mapped[int] = mapped_column(BigInteger)
    # Who sent the bytes: the owner, an admin, or a service account ("service:job_processor").
    uploaded_by: Mapped[str] = mapped_column(String(100))
    job_id: Mapped[str | None] = mapped_column(String(64))
    purpose: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default="available")
    # The name the client gave, for display and downloads only; the bytes live at `storage_key`.
    filename: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(255))
    storage_key: Mapped[str] = mapped_column(String(255), unique=True)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    md5: Mapped[str] = mapped_column(String(32))
    vcf: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    expired_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
