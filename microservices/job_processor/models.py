"""Tables of the job processor: jobs, their status history, idempotency keys, templates, and the event outbox."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    Uuid,
    func,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from microservices.common.db import new_metadata
from microservices.common.events import outbox_table


def _now() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = new_metadata()


outbox_table(Base.metadata)


class Job(Base):
    """One imputation job: what was asked, where it runs remotely, and where it stands."""

    __tablename__ = "job"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    user_id: Mapped[int] = mapped_column(Integer, index=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text)
    service_id: Mapped[int] = mapped_column(Integer, index=True)
    service_name: Mapped[str | None] = mapped_column(String(200))
    # Snapshot of the registry at submission: an admin editing the service later must not change a live job.
    api_type: Mapped[str] = mapped_column(String(20))
    reference_panel_id: Mapped[int] = mapped_column(Integer)
    panel_remote_id: Mapped[str] = mapped_column(String(200))
    panel_parameters: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    build: Mapped[str] = mapped_column(String(10))
    phasing: Mapped[bool] = mapped_column(Boolean, default=True)
    population: Mapped[str | None] = mapped_column(String(50))
    mode: Mapped[str] = mapped_column(String(20), default="imputation")
    r2_filter: Mapped[float | None] = mapped_column(Float)
    input_file_ids: Mapped[list[str]] = mapped_column(JSON, default=list)
    input_files: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)

    status: Mapped[str] = mapped_column(String(20), index=True)
    status_message: Mapped[str | None] = mapped_column(Text)
    progress: Mapped[int] = mapped_column(Integer, default=0)
    remote_job_id: Mapped[str | None] = mapped_column(String(200))
    remote_state: Mapped[str | None] = mapped_column(String(50))
    logs: Mapped[str | None] = mapped_column(Text)
    error_message: Mapped[str | None] = mapped_column(Text)
    # The Michigan result password, Fernet-encrypted; only the owner ever sees the plaintext.
    result_password_encrypted: Mapped[str | None] = mapped_column(Text)
    # Outputs fetched into the file manager: [{name, file_id, size_bytes, sha256}], one entry per remote output.
    result_files: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)

    poll_interval_s: Mapped[float] = mapped_column(Float, default=30.0)
    next_poll_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    failures: Mapped[int] = mapped_column(Integer, default=0)
    # Since when the remote side has been failing in a row (None while it answers): the deadline counts from here.
    failing_since: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    retry_of_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, ForeignKey("job.id", ondelete="SET NULL"))
    batch_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, index=True)
    template_id: Mapped[int | None] = mapped_column(Integer)
    run_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    # Set in Python, so that the values are known after a flush without another query (async sessions).
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now, server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=_now, onupdate=_now, server_default=func.now()
    )
    submitted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    history: Mapped[list[JobStatusHistory]] = relationship(
        back_populates="job", order_by="JobStatusHistory.id", cascade="all, delete-orphan", lazy="raise"
    )

    __table_args__ = (
        # The poller's query: live jobs whose next poll is due.
        Index("ix_job_status_next_poll_at", "status", "next_poll_at"),
        Index("ix_job_user_id_created_at", "user_id", "created_at"),
    )


class JobStatusHistory(Base):
    """One state change of a job (or the job's creation, with no old status)."""

    __tablename__ = "job_status_history"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("job.id", ondelete="CASCADE"), index=True)
    old_status: Mapped[str | None] = mapped_column(String(20))
    new_status: Mapped[str] = mapped_column(String(20))
    message: Mapped[str | None] = mapped_column(Text)
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    job: Mapped[Job] = relationship(back_populates="history")


class IdempotencyKey(Base):
    """An `Idempotency-Key` a user sent with `POST /jobs`, and the job it made."""

    __tablename__ = "idempotency_key"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(Integer)
    key: Mapped[str] = mapped_column(String(255))
    request_hash: Mapped[str] = mapped_column(String(64))
    job_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("job.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (UniqueConstraint("user_id", "key"),)


class JobTemplate(Base):
    """A saved set of job parameters a user starts jobs from."""

    __tablename__ = "job_template"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(Integer, index=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text)
    service_id: Mapped[int] = mapped_column(Integer)
    reference_panel_id: Mapped[int] = mapped_column(Integer)
    build: Mapped[str] = mapped_column(String(10))
    phasing: Mapped[bool] = mapped_column(Boolean, default=True)
    population: Mapped[str | None] = mapped_column(String(50))
    mode: Mapped[str] = mapped_column(String(20), default="imputation")
    r2_filter: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now, server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=_now, onupdate=_now, server_default=func.now()
    )

    __table_args__ = (UniqueConstraint("user_id", "name"),)
