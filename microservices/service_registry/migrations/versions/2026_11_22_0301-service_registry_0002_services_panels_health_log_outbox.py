"""Services, reference panels, the health log and the event outbox.

Revision ID: service_registry_0002
Revises: service_registry_0001
Create Date: 2026-11-22 03:01:54.142706
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from microservices.common.events import create_outbox_table, drop_outbox_table

revision: str = "service_registry_0002"
down_revision: str | None = "service_registry_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "imputation_service",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("slug", sa.String(length=100), nullable=False),
        sa.Column("api_type", sa.String(length=20), nullable=False),
        sa.Column("base_url", sa.String(length=500), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("location", sa.String(length=200), nullable=False),
        sa.Column("country_code", sa.String(length=2), nullable=True),
        sa.Column("contact_email", sa.String(length=254), nullable=True),
        sa.Column("auth_mode", sa.String(length=20), nullable=False),
        sa.Column("credential_encrypted", sa.Text(), nullable=True),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column("supported_builds", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("max_upload_size_mb", sa.Integer(), nullable=True),
        sa.Column("min_samples", sa.Integer(), nullable=True),
        sa.Column("max_samples", sa.Integer(), nullable=True),
        sa.Column("poll_interval_s", sa.Integer(), nullable=False),
        sa.Column("tags", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("capabilities", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("django_id", sa.Integer(), nullable=True),
        sa.Column("health_status", sa.String(length=20), nullable=False),
        sa.Column("response_time_ms", sa.Float(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("last_checked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("failing_since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_synced_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint(
            "api_type IN ('michigan', 'ga4gh_wes', 'dnastack')", name=op.f("ck_imputation_service_api_type")
        ),
        sa.CheckConstraint(
            "auth_mode IN ('none', 'api_token', 'bearer')", name=op.f("ck_imputation_service_auth_mode")
        ),
        sa.CheckConstraint(
            "health_status IN ('unknown', 'healthy', 'unhealthy')", name=op.f("ck_imputation_service_health_status")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_imputation_service")),
        sa.UniqueConstraint("django_id", name=op.f("uq_imputation_service_django_id")),
        sa.UniqueConstraint("name", name=op.f("uq_imputation_service_name")),
        sa.UniqueConstraint("slug", name=op.f("uq_imputation_service_slug")),
    )
    create_outbox_table(op)
    op.create_table(
        "health_check",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("service_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("http_status", sa.Integer(), nullable=True),
        sa.Column("response_time_ms", sa.Float(), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("checked_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["service_id"],
            ["imputation_service.id"],
            name=op.f("fk_health_check_service_id_imputation_service"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_health_check")),
    )
    op.create_index("ix_health_check_service_id_checked_at", "health_check", ["service_id", "checked_at"], unique=False)
    op.create_table(
        "reference_panel",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("service_id", sa.Integer(), nullable=False),
        sa.Column("panel_id", sa.String(length=200), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("build", sa.String(length=4), nullable=False),
        sa.Column("populations", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("samples_count", sa.Integer(), nullable=True),
        sa.Column("variants_count", sa.BigInteger(), nullable=True),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column("parameters", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("build IN ('hg19', 'hg38')", name=op.f("ck_reference_panel_build")),
        sa.ForeignKeyConstraint(
            ["service_id"],
            ["imputation_service.id"],
            name=op.f("fk_reference_panel_service_id_imputation_service"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reference_panel")),
        sa.UniqueConstraint("service_id", "panel_id", name=op.f("uq_reference_panel_service_id_panel_id")),
    )
    op.create_index(op.f("ix_reference_panel_service_id"), "reference_panel", ["service_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_reference_panel_service_id"), table_name="reference_panel")
    op.drop_table("reference_panel")
    op.drop_index("ix_health_check_service_id_checked_at", table_name="health_check")
    op.drop_table("health_check")
    drop_outbox_table(op)
    op.drop_table("imputation_service")
