"""Test infrastructure: the PostgreSQL and Redis servers, fresh databases, tokens, and the real platform processes."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from alembic import command
from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import FastAPI
from jose import jwk, jwt
from sqlalchemy.ext.asyncio import AsyncSession

from microservices.common.db import get_session
from microservices.common.localinfra import EmbeddedPostgres, EmbeddedRedis, free_port
from microservices.common.migrate import alembic_config, create_databases, drop_databases
from microservices.common.processes import Component, Supervisor, component_env, platform_components
from microservices.common.settings import DATABASE_NAMES, DEFAULT_PORTS

ROOT = Path(__file__).resolve().parent.parent
MIGRATED = tuple(name for name in DATABASE_NAMES if name != "django")
ENV_PREFIX = {name: f"{name.upper()}_" for name in DEFAULT_PORTS}


@dataclass
class Infrastructure:
    """The PostgreSQL and Redis servers the tests use: the environment's, or embedded ones."""

    database_url: str
    redis_url: str
    embedded: list[Any] = field(default_factory=list)

    @classmethod
    def start(cls) -> Infrastructure:
        embedded: list[Any] = []
        database_url = os.environ.get("DATABASE_URL", "")
        redis_url = os.environ.get("REDIS_URL", "")
        var = ROOT / "var" / "test"
        if not database_url:
            postgres = EmbeddedPostgres(var / "postgres", port=free_port())
            database_url = postgres.start()
            embedded.append(postgres)
        if not redis_url:
            redis_server = EmbeddedRedis(var / f"redis-{os.getpid()}", port=free_port())
            redis_url = redis_server.start()
            embedded.append(redis_server)
        return cls(database_url=database_url, redis_url=redis_url, embedded=embedded)

    def stop(self) -> None:
        for server in reversed(self.embedded):
            server.stop()


class DatabaseSet:
    """A fresh, migrated database for each service, named with a unique prefix, dropped at the end."""

    def __init__(self, infra: Infrastructure, label: str) -> None:
        self.infra = infra
        self.prefix = f"t{os.getpid()}{label}_"
        self.names = {service: self.prefix + db for service, db in DATABASE_NAMES.items()}

    def url(self, service: str, driver: str = "postgresql") -> str:
        from sqlalchemy.engine import make_url

        return (
            make_url(self.infra.database_url)
            .set(drivername=driver, database=self.names[service])
            .render_as_string(hide_password=False)
        )

    def create(self, *, migrate: bool = True) -> None:
        drop_databases(self.infra.database_url, list(self.names.values()))
        create_databases(self.infra.database_url, list(self.names.values()))
        if migrate:
            for service in MIGRATED:
                command.upgrade(alembic_config(service, self.url(service, "postgresql+psycopg2")), "head")

    def drop(self) -> None:
        drop_databases(self.infra.database_url, list(self.names.values()))

    def env(self) -> dict[str, str]:
        """Variables pointing each service at its database of this set."""
        env = {f"{ENV_PREFIX[s]}DATABASE_URL": self.url(s) for s in MIGRATED}
        env["DJANGO_DATABASE_URL"] = self.url("django")
        return env


class TokenFactory:
    """Signs access tokens with a key of its own, as the user service does, for tests of other services."""

    def __init__(self, *, issuer: str = "federated-imputation", audience: str = "federated-imputation-api") -> None:
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.private_pem = private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()
        public_pem = private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        self.kid = uuid.uuid4().hex[:16]
        self.public_jwk = {**jwk.construct(public_pem, "RS256").to_dict(), "kid": self.kid, "use": "sig"}
        self.issuer = issuer
        self.audience = audience

    @property
    def jwks(self) -> dict[str, Any]:
        return {"keys": [self.public_jwk]}

    def token(
        self,
        sub: str = "1",
        *,
        username: str = "alice",
        roles: Iterable[str] = ("researcher",),
        audience: str | None = None,
        expires_in_s: int = 900,
        headers: dict[str, Any] | None = None,
        **claims: Any,
    ) -> str:
        now = int(time.time())
        payload = {
            "sub": sub,
            "username": username,
            "roles": list(roles),
            "iat": now,
            "exp": now + expires_in_s,
            "iss": self.issuer,
            "aud": audience or self.audience,
            "jti": uuid.uuid4().hex,
            **claims,
        }
        return str(
            jwt.encode(payload, self.private_pem, algorithm="RS256", headers={"kid": self.kid, **(headers or {})})
        )

    def headers(self, **kwargs: Any) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(**kwargs)}"}


@contextlib.asynccontextmanager
async def app_client(
    app: FastAPI, *, tokens: TokenFactory | None = None, rollback: bool = True
) -> AsyncIterator[httpx.AsyncClient]:
    """An in-process client on `app` with its lifespan run; each use's database work is rolled back."""
    async with app.router.lifespan_context(app):
        if tokens is not None:
            app.state.token_verifier.set_jwks(tokens.jwks)
        database = getattr(app.state, "database", None)
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        if database is None or not rollback:
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                yield client
            return
        async with database.engine.connect() as connection:
            transaction = await connection.begin()
            session = AsyncSession(bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False)

            async def override() -> AsyncIterator[AsyncSession]:
                yield session

            app.dependency_overrides[get_session] = override
            app.state.test_session = session
            try:
                async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                    yield client
            finally:
                app.dependency_overrides.pop(get_session, None)
                await session.close()
                await transaction.rollback()


class SmtpCatcher:
    """A real SMTP server (aiosmtpd, in a thread) that keeps every message it receives."""

    def __init__(self, *, port: int) -> None:
        self.port = port
        self.messages: list[tuple[list[str], Any]] = []
        self._controller: Any = None

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        from email import message_from_bytes, policy

        self.messages.append((list(envelope.rcpt_tos), message_from_bytes(envelope.content, policy=policy.default)))
        return "250 Message accepted for delivery"

    def to(self, address: str) -> list[Any]:
        """The messages delivered to `address`, oldest first."""
        return [message for recipients, message in self.messages if address in recipients]

    def start(self) -> None:
        from aiosmtpd.controller import Controller

        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None


class Platform:
    """The real platform: every process started on free ports against fresh databases."""

    def __init__(self, infra: Infrastructure, *, extra_env: dict[str, str] | None = None) -> None:
        self.infra = infra
        # A Redis of its own, so that queues and heartbeats never mix with another test run's, and so that tests
        # can stop and restart it.
        self.redis = EmbeddedRedis(ROOT / "var" / "test" / f"platform-redis-{os.getpid()}", port=free_port())
        # A real SMTP server that catches the platform's e-mail (`platform.smtp.to(address)`).
        self.smtp = SmtpCatcher(port=free_port())
        self.databases = DatabaseSet(infra, "p")
        self.ports = {name: free_port() for name in DEFAULT_PORTS}
        self.log_dir = ROOT / "var" / "test" / f"logs-{os.getpid()}"
        self.env = {
            **os.environ,
            "ENVIRONMENT": "test",
            "DATABASE_URL": infra.database_url,
            "REDIS_URL": self.redis.url,
            "LOG_JSON": "true",
            "DJANGO_STATIC_ROOT": str(ROOT / "var" / "test" / "static"),
            "VAR_DIR": str(ROOT / "var" / "test"),
            # Service accounts and the first admin, as scripts/run.py sets them for the local run.
            "INTERNAL_CLIENT_SECRET": os.environ.get("INTERNAL_CLIENT_SECRET") or f"platform-{uuid.uuid4().hex}",
            "FERNET_KEY": os.environ.get("FERNET_KEY") or Fernet.generate_key().decode(),
            "BOOTSTRAP_ADMIN_USERNAME": "admin",
            "BOOTSTRAP_ADMIN_EMAIL": "admin@example.org",
            "BOOTSTRAP_ADMIN_PASSWORD": f"admin-{uuid.uuid4().hex}",
            # Every test logs in from 127.0.0.1: wrong passwords of all tests together must not lock that address.
            "USER_SERVICE_LOGIN_MAX_FAILURES_PER_ADDRESS": "1000",
            # E-mail goes to the catcher; stale events are taken over and health is sampled quickly enough for tests.
            "SMTP_HOST": "127.0.0.1",
            "SMTP_PORT": str(self.smtp.port),
            "NOTIFICATION_EVENT_CLAIM_IDLE_MS": "3000",
            "MONITORING_SAMPLE_INTERVAL_S": "1",
            **component_env(self.ports),
            **self.databases.env(),
            **(extra_env or {}),
        }
        self.components = {c.name: c for c in platform_components(self.ports, python=sys.executable)}
        self.supervisor = Supervisor(log_dir=self.log_dir, env=self.env, cwd=ROOT)

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"

    def start(self, names: Iterable[str] | None = None, *, timeout_s: float = 90.0) -> None:
        self.redis.start()
        self.smtp.start()
        self.databases.create()
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "--noinput"],
            env=self.env,
            cwd=ROOT,
            check=True,
            capture_output=True,
        )
        chosen = [self.components[n] for n in (names or self.components)]
        self.supervisor.start_all(chosen)
        self.supervisor.wait_healthy(chosen, timeout_s=timeout_s)

    def stop_component(self, name: str) -> None:
        self.supervisor.stop(name)

    def restart_component(self, name: str, *, timeout_s: float = 60.0) -> Component:
        component = self.components[name]
        self.supervisor.start(component)
        self.supervisor.wait_healthy([component], timeout_s=timeout_s)
        return component

    def stop(self) -> None:
        self.supervisor.stop_all()
        self.redis.stop()
        self.smtp.stop()
        self.databases.drop()


def wait_until(predicate: Callable[[], Any], *, timeout_s: float, interval_s: float = 0.2) -> Any:
    """Poll `predicate` until it returns something truthy; fail the test after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout_s:g} s")
        time.sleep(interval_s)
