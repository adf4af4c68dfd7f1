"""Job templates: saved parameter sets.

Revision ID: job_processor_0003
Revises: job_processor_0002
Create Date: 2026-11-22 03:29:10.841053
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "job_processor_0003"
down_revision: str | None = "job_processor_0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "job_template",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("service_id", sa.Integer(), nullable=False),
        sa.Column("reference_panel_id", sa.Integer(), nullable=False),
        sa.Column("build", sa.String(length=10), nullable=False),
        sa.Column("phasing", sa.Boolean(), nullable=False),
        sa.Column("population", sa.String(length=50), nullable=True),
        sa.Column("mode", sa.String(length=20), nullable=False),
        sa.Column("r2_filter", sa.Float(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_job_template")),
        sa.UniqueConstraint("user_id", "name", name=op.f("uq_job_template_user_id_name")),
    )
    op.create_index(op.f("ix_job_template_user_id"), "job_template", ["user_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_job_template_user_id"), table_name="job_template")
    op.drop_table("job_template")
