"""Tables of the monitoring service."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, Boolean, DateTime, Float, ForeignKey, Index, Integer, String, Text, func, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from microservices.common.db import new_metadata
from microservices.common.events import outbox_table, processed_event_table


class Base(DeclarativeBase):
    metadata = new_metadata()


# Monitoring consumes job, upload, user and service-health events, and emits notification requests for alerts.
outbox_event = outbox_table(Base.metadata)
processed_event = processed_event_table(Base.metadata)


class HealthSample(Base):
    """One probe of one component by the sampler (raw; kept for `raw_retention_days`)."""

    __tablename__ = "health_sample"
    __table_args__ = (Index("ix_health_sample_component_checked_at", "component", "checked_at"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    component: Mapped[str] = mapped_column(String(50))
    status: Mapped[str] = mapped_column(String(20))
    response_time_ms: Mapped[float] = mapped_column(Float)
    error: Mapped[str | None] = mapped_column(Text)
    checked_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


class HealthHourly(Base):
    """Samples of one component summed up per hour (kept for `hourly_retention_days`)."""

    __tablename__ = "health_hourly"

    component: Mapped[str] = mapped_column(String(50), primary_key=True)
    hour: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    samples: Mapped[int] = mapped_column(Integer)
    healthy: Mapped[int] = mapped_column(Integer)
    degraded: Mapped[int] = mapped_column(Integer)
    unhealthy: Mapped[int] = mapped_column(Integer)
    avg_response_time_ms: Mapped[float] = mapped_column(Float)


class AlertRule(Base):
    """A condition worth an alert; `kind` picks the check, threshold and duration tune it."""

    __tablename__ = "alert_rule"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(50), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    threshold: Mapped[float] = mapped_column(Float)
    duration_s: Mapped[int] = mapped_column(Integer)
    severity: Mapped[str] = mapped_column(String(20), server_default="critical")
    enabled: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )


class Alert(Base):
    """One opening of a rule for one subject: active until the condition clears, then resolved."""

    __tablename__ = "alert"
    __table_args__ = (
        # An alert opens once: at most one active alert per rule and subject.
        Index("uq_alert_active_subject", "rule_id", "subject", unique=True, postgresql_where=text("status = 'active'")),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    rule_id: Mapped[int] = mapped_column(ForeignKey("alert_rule.id", ondelete="CASCADE"), index=True)
    subject: Mapped[str] = mapped_column(String(200))
    severity: Mapped[str] = mapped_column(String(20))
    title: Mapped[str] = mapped_column(String(300))
    message: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(20), server_default="active")
    opened_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    acknowledged_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    acknowledged_by: Mapped[str | None] = mapped_column(String(150))


class JobStat(Base):
    """One job as the job events describe it, for the dashboard's counts and times."""

    __tablename__ = "job_stat"
    __table_args__ = (Index("ix_job_stat_created_at", "created_at"),)

    job_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int | None] = mapped_column(Integer)
    service_id: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    queued_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class UploadStat(Base):
    """One completed upload."""

    __tablename__ = "upload_stat"

    file_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int | None] = mapped_column(Integer)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    uploaded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


class UserActivity(Base):
    """A user was active on a day (any job, upload or logged action)."""

    __tablename__ = "user_activity"

    user_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    day: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)


class ExternalServiceStatus(Base):
    """The latest health of each external imputation service, from the registry's events."""

    __tablename__ = "external_service_status"

    service_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(20))
    error: Mapped[str | None] = mapped_column(Text)
    changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    event_id: Mapped[uuid.UUID | None] = mapped_column()
