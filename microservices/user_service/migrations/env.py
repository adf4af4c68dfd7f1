"""Alembic environment of the user service."""

from microservices.common.migrate import run_migrations
from microservices.user_service.models import Base

run_migrations(Base.metadata)
