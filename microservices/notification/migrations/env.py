"""Alembic environment of the notification service."""

from microservices.common.migrate import run_migrations
from microservices.notification.models import Base

run_migrations(Base.metadata)
