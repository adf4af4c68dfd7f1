"""Alembic environment of the job processor."""

from microservices.common.migrate import run_migrations
from microservices.job_processor.models import Base

run_migrations(Base.metadata)
