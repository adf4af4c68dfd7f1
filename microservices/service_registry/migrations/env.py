"""Alembic environment of the service registry."""

from microservices.common.migrate import run_migrations
from microservices.service_registry.models import Base

run_migrations(Base.metadata)
