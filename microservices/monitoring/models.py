"""Tables of the monitoring service."""

from sqlalchemy.orm import DeclarativeBase

from microservices.common.db import new_metadata


class Base(DeclarativeBase):
    metadata = new_metadata()
