"""Stored files and the event outbox.

Revision ID: file_manager_0002
Revises: file_manager_0001
Create Date: 2026-11-22 03:15:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from microservices.common.events import create_outbox_table, drop_outbox_table

revision: str = "file_manager_0002"
down_revision: str | None = "file_manager_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "stored_file",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("owner_id", sa.BigInteger(), nullable=False),
        sa.Column("uploaded_by", sa.String(length=100), nullable=False),
        sa.Column("job_id", sa.String(length=64), nullable=True),
        sa.Column("purpose", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("filename", sa.String(length=255), nullable=False),
        sa.Column("content_type", sa.String(length=255), nullable=False),
        sa.Column("storage_key", sa.String(length=255), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("md5", sa.String(length=32), nullable=False),
        sa.Column("vcf", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("expired_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("purpose IN ('input', 'result')", name=op.f("ck_stored_file_purpose")),
        sa.CheckConstraint("status IN ('available', 'expired')", name=op.f("ck_stored_file_status")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stored_file")),
        sa.UniqueConstraint("storage_key", name=op.f("uq_stored_file_storage_key")),
    )
    op.create_index("ix_stored_file_owner_id_created_at", "stored_file", ["owner_id", "created_at"])
    op.create_index("ix_stored_file_job_id", "stored_file", ["job_id"])
    op.create_index("ix_stored_file_status_expires_at", "stored_file", ["status", "expires_at"])
    create_outbox_table(op)


def downgrade() -> None:
    drop_outbox_table(op)
    op.drop_index("ix_stored_file_status_expires_at", table_name="stored_file")
    op.drop_index("ix_stored_file_job_id", table_name="stored_file")
    op.drop_index("ix_stored_file_owner_id_created_at", table_name="stored_file")
    op.drop_table("stored_file")
