"""Fixtures shared by every test: real PostgreSQL and Redis, fresh migrated databases, tokens, the platform."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.harness import DatabaseSet, Infrastructure, Platform, TokenFactory


@pytest.fixture(scope="session")
def infra() -> Iterator[Infrastructure]:
    """The PostgreSQL and Redis servers of the environment (DATABASE_URL, REDIS_URL) or embedded ones."""
    infrastructure = Infrastructure.start()
    # Settings made by tests read these, so every service finds the test servers.
    os.environ["DATABASE_URL"] = infrastructure.database_url
    os.environ["REDIS_URL"] = infrastructure.redis_url
    os.environ.setdefault("ENVIRONMENT", "test")
    yield infrastructure
    infrastructure.stop()


@pytest.fixture(scope="session")
def databases(infra: Infrastructure) -> Iterator[DatabaseSet]:
    """A fresh, migrated database per service for in-process tests; each service's settings point at it."""
    database_set = DatabaseSet(infra, "u")
    database_set.create()
    saved = {k: os.environ.get(k) for k in database_set.env()}
    os.environ.update(database_set.env())
    yield database_set
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    database_set.drop()


@pytest.fixture(scope="session")
def tokens() -> TokenFactory:
    """Signs access tokens that in-process apps accept (their verifier is given this factory's JWKS)."""
    return TokenFactory()


@pytest.fixture(scope="session")
def platform(infra: Infrastructure) -> Iterator[Platform]:
    """Every process of the platform, started for real on free ports (integration tests)."""
    running = Platform(infra)
    try:
        running.start()
        yield running
    finally:
        running.stop()
