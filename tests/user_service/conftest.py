"""Fixtures of the user service's tests: the app in-process on the test database, keys, and small factories."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from typing import Any

import pytest
from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import FastAPI
from httpx import AsyncClient
from pydantic import SecretStr
from redis.asyncio import Redis
from sqlalchemy import create_engine, text

from microservices.common.service_auth import client_secret_for
from microservices.user_service import schemas, service
from microservices.user_service.config import Settings
from microservices.user_service.main import build_app
from microservices.user_service.models import User
from tests.harness import app_client

PASSWORD = "correct horse battery"
INTERNAL_SECRET = "internal-client-secret-for-tests"


def private_pem() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


@pytest.fixture(scope="session")
def signing_pem() -> str:
    return private_pem()


@pytest.fixture(scope="session")
def fernet_key() -> str:
    return Fernet.generate_key().decode()


@pytest.fixture(scope="session")
def high_user_ids(databases) -> None:
    """User ids far from the small ones other tests put in tokens, since revocation marks live in a shared Redis."""
    engine = create_engine(databases.url("user_service", "postgresql+psycopg2"))
    with engine.begin() as connection:
        connection.execute(
            text("SELECT setval('user_account_id_seq', :start)"),
            {"start": 100_000_000 + (os.getpid() % 1000) * 100_000},
        )
    engine.dispose()


def make_settings(signing_pem: str, fernet_key: str, tmp_path: Any, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "jwt_private_key": SecretStr(signing_pem),
        "fernet_key": SecretStr(fernet_key),
        "internal_client_secret": SecretStr(INTERNAL_SECRET),
        "password_hash_memory_kib": 1024,
        "password_hash_time_cost": 1,
        "var_dir": tmp_path,
        "bootstrap_admin_username": None,
        "bootstrap_admin_email": None,
        "bootstrap_admin_password": None,
        "events_enabled": False,
        **overrides,
    }
    return Settings(**values)


@pytest.fixture
def settings(databases, high_user_ids, signing_pem, fernet_key, tmp_path) -> Settings:
    return make_settings(signing_pem, fernet_key, tmp_path)


@pytest.fixture
async def redis(databases) -> AsyncIterator[Redis]:
    client = Redis.from_url(f"{databases.infra.redis_url.rstrip('/')}/0")
    await client.delete("login:failures:address:127.0.0.1")
    yield client
    await client.delete("login:failures:address:127.0.0.1")
    await client.aclose()


@pytest.fixture
def app(settings) -> FastAPI:
    return build_app(settings)


@pytest.fixture
async def client(app, redis) -> AsyncIterator[AsyncClient]:
    async with app_client(app) as c:
        yield c


async def make_user(
    app: FastAPI,
    *,
    username: str,
    roles: tuple[str, ...] = ("researcher",),
    password: str = PASSWORD,
    email: str | None = None,
    is_active: bool = True,
) -> User:
    """A user in the test's transaction."""
    return await service.create_user(
        session=app.state.test_session,
        passwords=app.state.passwords,
        user_in=schemas.RegisterRequest(username=username, email=email or f"{username}@example.org", password=password),
        roles=roles,
        is_active=is_active,
    )


async def login(client: AsyncClient, username: str, password: str = PASSWORD) -> dict[str, Any]:
    response = await client.post("/auth/login", json={"username": username, "password": password})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def user_headers(
    app: FastAPI, client: AsyncClient, username: str, roles: tuple[str, ...] = ("researcher",)
) -> dict[str, str]:
    """Headers of a freshly created user who logged in."""
    await make_user(app, username=username, roles=roles)
    return bearer((await login(client, username))["access_token"])


async def service_headers(client: AsyncClient, client_id: str = "job_processor") -> dict[str, str]:
    response = await client.post(
        "/auth/token",
        data={
            "grant_type": "client_credentials",
            "client_id": client_id,
            "client_secret": client_secret_for(INTERNAL_SECRET, client_id),
        },
    )
    assert response.status_code == 200, response.text
    return bearer(response.json()["access_token"])
