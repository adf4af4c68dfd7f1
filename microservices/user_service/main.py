"""User service: accounts, login, tokens, roles, groups, permissions, audit log, external credentials."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from fastapi import FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

from microservices.common.app import create_app
from microservices.common.db import Database
from microservices.common.events import run_outbox_relay
from microservices.user_service import service
from microservices.user_service.config import Settings
from microservices.user_service.routers import routers
from microservices.user_service.security import TokenSigner, make_fernet, password_context


class StripTrailingSlash:
    """Serves `/users/` as `/users`: scripts for the system we replace add trailing slashes, and no redirect."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        if scope["type"] in ("http", "websocket") and len(path) > 1 and path.endswith("/"):
            stripped = path.rstrip("/") or "/"
            scope = {**scope, "path": stripped, "raw_path": stripped.encode()}
        await self.app(scope, receive, send)


def build_app(settings: Settings | None = None) -> FastAPI:
    """The user service's ASGI app."""
    settings = settings or Settings()
    # Keys are read before serving, so that a missing production key stops the start with a clear message.
    signer = TokenSigner.from_settings(settings)
    fernet = make_fernet(settings)
    passwords = password_context(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.signer = signer
        app.state.fernet = fernet
        app.state.passwords = passwords
        # This service's own tokens are verified with its own keys, without fetching its JWKS over HTTP.
        app.state.token_verifier.set_jwks(signer.jwks)
        # API tokens are looked up in this service's own database (dependencies.get_caller), never over HTTP.
        app.state.token_verifier.introspector = None
        database: Database = app.state.database
        async with database.sessionmaker() as session, session.begin():
            await service.ensure_bootstrap_admin(session=session, settings=settings, passwords=passwords)
        async with contextlib.AsyncExitStack() as stack:
            if settings.events_enabled:
                await stack.enter_async_context(run_outbox_relay(app))
            yield

    app = create_app(
        settings=settings,
        title="User service",
        description="Accounts, login, tokens, roles, groups, permissions, audit log, external credentials.",
        routers=routers,
        lifespan=lifespan,
    )
    app.add_middleware(StripTrailingSlash)
    return app


def __getattr__(name: str) -> FastAPI:
    # `uvicorn microservices.user_service.main:app` works without building an app at import time.
    if name == "app":
        return build_app()
    raise AttributeError(name)
