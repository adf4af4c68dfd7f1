"""Alembic environment of the file manager."""

from microservices.common.migrate import run_migrations
from microservices.file_manager.models import Base

run_migrations(Base.metadata)
