"""Jobs, their status history, idempotency keys and the event outbox.

Revision ID: job_processor_0002
Revises: job_processor_0001
Create Date: 2026-11-22 03:04:30.601061
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from microservices.common.events import create_outbox_table, drop_outbox_table

revision: str = "job_processor_0002"
down_revision: str | None = "job_processor_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "job",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("service_id", sa.Integer(), nullable=False),
        sa.Column("service_name", sa.String(length=200), nullable=True),
        sa.Column("api_type", sa.String(length=20), nullable=False),
        sa.Column("reference_panel_id", sa.Integer(), nullable=False),
        sa.Column("panel_remote_id", sa.String(length=200), nullable=False),
        sa.Column("panel_parameters", sa.JSON(), nullable=False),
        sa.Column("build", sa.String(length=10), nullable=False),
        sa.Column("phasing", sa.Boolean(), nullable=False),
        sa.Column("population", sa.String(length=50), nullable=True),
        sa.Column("mode", sa.String(length=20), nullable=False),
        sa.Column("r2_filter", sa.Float(), nullable=True),
        sa.Column("input_file_ids", sa.JSON(), nullable=False),
        sa.Column("input_files", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("status_message", sa.Text(), nullable=True),
        sa.Column("progress", sa.Integer(), nullable=False),
        sa.Column("remote_job_id", sa.String(length=200), nullable=True),
        sa.Column("remote_state", sa.String(length=50), nullable=True),
        sa.Column("logs", sa.Text(), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("result_password_encrypted", sa.Text(), nullable=True),
        sa.Column("result_files", sa.JSON(), nullable=False),
        sa.Column("poll_interval_s", sa.Float(), nullable=False),
        sa.Column("next_poll_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("failing_since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("retry_of_id", sa.Uuid(), nullable=True),
        sa.Column("batch_id", sa.Uuid(), nullable=True),
        sa.Column("template_id", sa.Integer(), nullable=True),
        sa.Column("run_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["retry_of_id"], ["job.id"], name=op.f("fk_job_retry_of_id_job"), ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_job")),
    )
    op.create_index(op.f("ix_job_batch_id"), "job", ["batch_id"], unique=False)
    op.create_index(op.f("ix_job_service_id"), "job", ["service_id"], unique=False)
    op.create_index(op.f("ix_job_status"), "job", ["status"], unique=False)
    op.create_index("ix_job_status_next_poll_at", "job", ["status", "next_poll_at"], unique=False)
    op.create_index(op.f("ix_job_user_id"), "job", ["user_id"], unique=False)
    op.create_index("ix_job_user_id_created_at", "job", ["user_id", "created_at"], unique=False)
    create_outbox_table(op)
    op.create_table(
        "idempotency_key",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.Column("job_id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(["job_id"], ["job.id"], name=op.f("fk_idempotency_key_job_id_job"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_idempotency_key")),
        sa.UniqueConstraint("user_id", "key", name=op.f("uq_idempotency_key_user_id_key")),
    )
    op.create_table(
        "job_status_history",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("job_id", sa.Uuid(), nullable=False),
        sa.Column("old_status", sa.String(length=20), nullable=True),
        sa.Column("new_status", sa.String(length=20), nullable=False),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("occurred_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["job_id"], ["job.id"], name=op.f("fk_job_status_history_job_id_job"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_job_status_history")),
    )
    op.create_index(op.f("ix_job_status_history_job_id"), "job_status_history", ["job_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_job_status_history_job_id"), table_name="job_status_history")
    op.drop_table("job_status_history")
    op.drop_table("idempotency_key")
    drop_outbox_table(op)
    op.drop_index("ix_job_user_id_created_at", table_name="job")
    op.drop_index(op.f("ix_job_user_id"), table_name="job")
    op.drop_index("ix_job_status_next_poll_at", table_name="job")
    op.drop_index(op.f("ix_job_status"), table_name="job")
    op.drop_index(op.f("ix_job_service_id"), table_name="job")
    op.drop_index(op.f("ix_job_batch_id"), table_name="job")
    op.drop_table("job")
