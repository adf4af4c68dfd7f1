"""The event outbox: audit entries are published as `user.action.logged`.

Revision ID: user_service_0003
Revises: user_service_0002
Create Date: 2026-11-22 03:20:00
"""

from collections.abc import Sequence

from alembic import op

from microservices.common.events import create_outbox_table, drop_outbox_table

revision: str = "user_service_0003"
down_revision: str | None = "user_service_0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    create_outbox_table(op)


def downgrade() -> None:
    drop_outbox_table(op)
