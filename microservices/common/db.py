"""Async SQLAlchemy for the services, a sync engine for Celery, and the per-request session dependency."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import Engine, MetaData, create_engine, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import Session, sessionmaker

# Explicit constraint names, so that Alembic can drop and alter them by name.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def new_metadata() -> MetaData:
    """Metadata for one service's tables, with the platform's constraint naming convention."""
    return MetaData(naming_convention=NAMING_CONVENTION)


class Database:
    """One service's async engine and session factory, made in the app's lifespan."""

    def __init__(self, url: str, *, pool_size: int = 5, max_overflow: int = 10) -> None:
        self.engine: AsyncEngine = create_async_engine(
            url, pool_size=pool_size, max_overflow=max_overflow, pool_pre_ping=True, pool_recycle=1800
        )
        self.sessionmaker = async_sessionmaker(self.engine, expire_on_commit=False)

    async def session(self) -> AsyncIterator[AsyncSession]:
        """A session that commits when the request succeeds and rolls back when it fails."""
        async with self.sessionmaker() as session:
            try:
                yield session
                await session.commit()
            except BaseException:
                await session.rollback()
                raise

    async def ping(self) -> None:
        """Raise unless the database answers a trivial query."""
        async with self.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        """Close every pooled connection."""
        await self.engine.dispose()


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """FastAPI dependency: the request's database session (commit on success, rollback on error)."""
    database: Database = request.app.state.database
    async for session in database.session():
        yield session


# scope="function": the session commits when the endpoint returns, before the response is sent, so a client never
# holds an id whose row failed to commit (the default scope would commit after the response went out).
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]


def make_sync_sessionmaker(url: str, *, pool_size: int = 5) -> tuple[Engine, sessionmaker[Session]]:
    """A psycopg2 engine and session factory for Celery tasks and scripts."""
    engine = create_engine(url, pool_size=pool_size, pool_pre_ping=True, pool_recycle=1800)
    return engine, sessionmaker(engine, expire_on_commit=False)
