"""Tables of the service registry."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from microservices.common.db import new_metadata
from microservices.common.events import outbox_table

API_TYPES = ("michigan", "ga4gh_wes", "dnastack")
AUTH_MODES = ("none", "api_token", "bearer")
HEALTH_STATUSES = ("unknown", "healthy", "unhealthy")
BUILDS = ("hg19", "hg38")


class Base(DeclarativeBase):
    metadata = new_metadata()


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class ImputationService(Base):
    """An external imputation service the platform can send jobs to."""

    __tablename__ = "imputation_service"
    __table_args__ = (
        CheckConstraint(_in("api_type", API_TYPES), name="api_type"),
        CheckConstraint(_in("auth_mode", AUTH_MODES), name="auth_mode"),
        CheckConstraint(_in("health_status", HEALTH_STATUSES), name="health_status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    slug: Mapped[str] = mapped_column(String(100), unique=True)
    api_type: Mapped[str] = mapped_column(String(20))
    base_url: Mapped[str] = mapped_column(String(500))
    description: Mapped[str] = mapped_column(Text, default="")
    location: Mapped[str] = mapped_column(String(200), default="")
    country_code: Mapped[str | None] = mapped_column(String(2))
    contact_email: Mapped[str | None] = mapped_column(String(254))
    auth_mode: Mapped[str] = mapped_column(String(20), default="none")
    # Fernet token of the service-level credential; never leaves the registry except to its own platform.
    credential_encrypted: Mapped[str | None] = mapped_column(Text)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    supported_builds: Mapped[list[str]] = mapped_column(JSONB, default=list)
    max_upload_size_mb: Mapped[int | None] = mapped_column(Integer)
    min_samples: Mapped[int | None] = mapped_column(Integer)
    max_samples: Mapped[int | None] = mapped_column(Integer)
    poll_interval_s: Mapped[int] = mapped_column(Integer, default=60)
    tags: Mapped[list[str]] = mapped_column(JSONB, default=list)
    # What the service itself advertises (WES service-info: workflow types, engines, versions).
    capabilities: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    # The Django admin's id of the same service: the key of its idempotent upserts.
    django_id: Mapped[int | None] = mapped_column(Integer, unique=True)

    health_status: Mapped[str] = mapped_column(String(20), default="unknown")
    response_time_ms: Mapped[float | None] = mapped_column(Float)
    last_error: Mapped[str | None] = mapped_column(Text)
    last_checked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    failing_since: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_synced_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )


class ReferencePanel(Base):
    """A reference panel one service imputes against."""

    __tablename__ = "reference_panel"
    __table_args__ = (
        UniqueConstraint("service_id", "panel_id"),
        CheckConstraint(_in("build", BUILDS), name="build"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    service_id: Mapped[int] = mapped_column(ForeignKey("imputation_service.id", ondelete="CASCADE"), index=True)
    panel_id: Mapped[str] = mapped_column(String(200))
    name: Mapped[str] = mapped_column(String(200))
    build: Mapped[str] = mapped_column(String(4))
    populations: Mapped[list[str]] = mapped_column(JSONB, default=list)
    samples_count: Mapped[int | None] = mapped_column(Integer)
    variants_count: Mapped[int | None] = mapped_column(BigInteger)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    # Node-side settings for WES workflows (reference VCF path, genetic map path), or Michigan's refpanel value.
    parameters: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )


class HealthCheck(Base):
    """One health check of one service: the health log."""

    __tablename__ = "health_check"
    __table_args__ = (Index("ix_health_check_service_id_checked_at", "service_id", "checked_at"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    service_id: Mapped[int] = mapped_column(ForeignKey("imputation_service.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(20))
    http_status: Mapped[int | None] = mapped_column(Integer)
    response_time_ms: Mapped[float | None] = mapped_column(Float)
    error_message: Mapped[str | None] = mapped_column(Text)
    checked_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


outbox = outbox_table(Base.metadata)
