"""Fixtures of the service registry's tests: the app in process, tokens for each role, a Michigan fake."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import select

from microservices.common.events import outbox_table
from microservices.service_registry.config import Settings
from microservices.service_registry.main import build_app
from microservices.service_registry.models import Base
from tests.fakes.michigan import make_app as make_michigan
from tests.fakes.serve import serve_asgi
from tests.harness import app_client

FERNET_KEY = Fernet.generate_key().decode()
MICHIGAN_TOKEN = "michigan-registry-token"
OUTBOX = outbox_table(Base.metadata)


def registry_settings(**overrides) -> Settings:
    values = {
        "fernet_key": FERNET_KEY,
        "health_check_enabled": False,
        "events_enabled": False,
        "health_cache_prefix": f"test:{uuid.uuid4().hex}:health:",
        "health_connect_timeout_s": 2.0,
        "health_total_timeout_s": 3.0,
    }
    return Settings(**{**values, **overrides})


@pytest.fixture
async def app(databases):
    return build_app(registry_settings())


@pytest.fixture
async def client(app, tokens):
    async with app_client(app, tokens=tokens) as c:
        # Events committed by other tests (those that run the registry for real) are not this test's.
        app.state.earlier_events = set((await app.state.test_session.scalars(select(OUTBOX.c.id))).all())
        yield c


@pytest.fixture
def admin(tokens):
    return tokens.headers(sub="1", username="root", roles=["admin"])


@pytest.fixture
def service_admin(tokens):
    return tokens.headers(sub="2", username="sam", roles=["service_admin"])


@pytest.fixture
def researcher(tokens):
    return tokens.headers(sub="3", username="rita", roles=["researcher"])


@pytest.fixture
def service_account(tokens):
    return tokens.headers(sub="service:django", username="django", roles=[], audience="federated-imputation-internal")


@pytest.fixture
async def michigan():
    """A Michigan fake over real HTTP: yields (base URL, its state)."""
    fake_app = make_michigan(token=MICHIGAN_TOKEN, username="registry")
    async with serve_asgi(fake_app) as base_url:
        yield base_url, fake_app.state.fake


def service_body(**overrides) -> dict:
    body = {
        "name": "Michigan Imputation Server",
        "api_type": "michigan",
        "base_url": "https://imputationserver.sph.umich.edu",
        "description": "University of Michigan",
        "location": "Ann Arbor, MI",
        "country_code": "US",
        "contact_email": "help@example.org",
        "auth_mode": "api_token",
        "supported_builds": ["hg19", "hg38"],
        "max_upload_size_mb": 5000,
        "min_samples": 20,
        "max_samples": 50000,
        "poll_interval_s": 60,
        "tags": ["public", "minimac4"],
    }
    return {**body, **overrides}


async def create(client, headers, **overrides) -> dict:
    response = await client.post("/services", json=service_body(**overrides), headers=headers)
    assert response.status_code == 201, response.text
    return response.json()


async def async_wait_until(predicate, *, timeout_s: float, interval_s: float = 0.05):
    """`wait_until` for a coroutine predicate, yielding to the event loop the app's tasks run in."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not (value := await predicate()):
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {timeout_s:g} s")
        await asyncio.sleep(interval_s)
    return value


async def events(app, topic: str) -> list[dict]:
    """Payloads of the outbox rows of `topic` written in the test's transaction, oldest first."""
    session = app.state.test_session
    rows = await session.execute(
        select(OUTBOX.c.id, OUTBOX.c.payload).where(OUTBOX.c.topic == topic).order_by(OUTBOX.c.occurred_at)
    )
    return [row.payload for row in rows if row.id not in app.state.earlier_events]
