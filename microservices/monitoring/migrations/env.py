"""Alembic environment of the monitoring service."""

from microservices.common.migrate import run_migrations
from microservices.monitoring.models import Base

run_migrations(Base.metadata)
