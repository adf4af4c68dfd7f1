"""Baseline of the job processor's database: the history starts here.

Revision ID: job_processor_0001
Revises:
Create Date: 2026-11-22 03:00:00
"""

from collections.abc import Sequence

revision: str = "job_processor_0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
