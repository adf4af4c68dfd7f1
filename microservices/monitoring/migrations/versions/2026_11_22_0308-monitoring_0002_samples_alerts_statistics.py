"""Health samples and hourly aggregates, alert rules (seeded) and alerts, dashboard statistics, event tables

Revision ID: monitoring_0002
Revises: monitoring_0001
Create Date: 2026-11-22 03:08:36.293744
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from microservices.common.events import (
    create_outbox_table,
    create_processed_event_table,
    drop_outbox_table,
    drop_processed_event_table,
)

revision: str = "monitoring_0002"
down_revision: str | None = "monitoring_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "alert_rule",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(length=50), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("threshold", sa.Float(), nullable=False),
        sa.Column("duration_s", sa.Integer(), nullable=False),
        sa.Column("severity", sa.String(length=20), server_default="critical", nullable=False),
        sa.Column("enabled", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alert_rule")),
        sa.UniqueConstraint("kind", name=op.f("uq_alert_rule_kind")),
    )
    op.bulk_insert(
        sa.table(
            "alert_rule",
            sa.column("kind", sa.String),
            sa.column("name", sa.String),
            sa.column("threshold", sa.Float),
            sa.column("duration_s", sa.Integer),
            sa.column("severity", sa.String),
        ),
        [
            {
                "kind": "component_unhealthy",
                "name": "A platform component is unhealthy",
                "threshold": 0,
                "duration_s": 60,
                "severity": "critical",
            },
            {
                "kind": "external_service_down",
                "name": "An external imputation service is down",
                "threshold": 0,
                "duration_s": 300,
                "severity": "warning",
            },
            {
                "kind": "job_failure_rate",
                "name": "Job failure rate over the last hour is high",
                "threshold": 0.5,
                "duration_s": 3600,
                "severity": "warning",
            },
            {
                "kind": "disk_usage",
                "name": "Disk usage is high",
                "threshold": 90,
                "duration_s": 0,
                "severity": "warning",
            },
        ],
    )
    op.create_table(
        "external_service_status",
        sa.Column("service_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("event_id", sa.Uuid(), nullable=True),
        sa.PrimaryKeyConstraint("service_id", name=op.f("pk_external_service_status")),
    )
    op.create_table(
        "health_hourly",
        sa.Column("component", sa.String(length=50), nullable=False),
        sa.Column("hour", sa.DateTime(timezone=True), nullable=False),
        sa.Column("samples", sa.Integer(), nullable=False),
        sa.Column("healthy", sa.Integer(), nullable=False),
        sa.Column("degraded", sa.Integer(), nullable=False),
        sa.Column("unhealthy", sa.Integer(), nullable=False),
        sa.Column("avg_response_time_ms", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("component", "hour", name=op.f("pk_health_hourly")),
    )
    op.create_table(
        "health_sample",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("component", sa.String(length=50), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("response_time_ms", sa.Float(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("checked_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_health_sample")),
    )
    op.create_index(op.f("ix_health_sample_checked_at"), "health_sample", ["checked_at"], unique=False)
    op.create_index("ix_health_sample_component_checked_at", "health_sample", ["component", "checked_at"], unique=False)
    op.create_table(
        "job_stat",
        sa.Column("job_id", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("service_id", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("queued_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("job_id", name=op.f("pk_job_stat")),
    )
    op.create_index("ix_job_stat_created_at", "job_stat", ["created_at"], unique=False)
    create_outbox_table(op)
    create_processed_event_table(op)
    op.create_table(
        "upload_stat",
        sa.Column("file_id", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("uploaded_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("file_id", name=op.f("pk_upload_stat")),
    )
    op.create_index(op.f("ix_upload_stat_uploaded_at"), "upload_stat", ["uploaded_at"], unique=False)
    op.create_table(
        "user_activity",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("day", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("user_id", "day", name=op.f("pk_user_activity")),
    )
    op.create_table(
        "alert",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("rule_id", sa.Integer(), nullable=False),
        sa.Column("subject", sa.String(length=200), nullable=False),
        sa.Column("severity", sa.String(length=20), nullable=False),
        sa.Column("title", sa.String(length=300), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=20), server_default="active", nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("acknowledged_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("acknowledged_by", sa.String(length=150), nullable=True),
        sa.ForeignKeyConstraint(
            ["rule_id"], ["alert_rule.id"], name=op.f("fk_alert_rule_id_alert_rule"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alert")),
    )
    op.create_index(op.f("ix_alert_rule_id"), "alert", ["rule_id"], unique=False)
    op.create_index(
        "uq_alert_active_subject",
        "alert",
        ["rule_id", "subject"],
        unique=True,
        postgresql_where=sa.text("status = 'active'"),
    )


def downgrade() -> None:
    op.drop_index("uq_alert_active_subject", table_name="alert", postgresql_where=sa.text("status = 'active'"))
    op.drop_index(op.f("ix_alert_rule_id"), table_name="alert")
    op.drop_table("alert")
    op.drop_table("user_activity")
    op.drop_index(op.f("ix_upload_stat_uploaded_at"), table_name="upload_stat")
    op.drop_table("upload_stat")
    drop_processed_event_table(op)
    drop_outbox_table(op)
    op.drop_index("ix_job_stat_created_at", table_name="job_stat")
    op.drop_table("job_stat")
    op.drop_index("ix_health_sample_component_checked_at", table_name="health_sample")
    op.drop_index(op.f("ix_health_sample_checked_at"), table_name="health_sample")
    op.drop_table("health_sample")
    op.drop_table("health_hourly")
    op.drop_table("external_service_status")
    op.drop_table("alert_rule")
