"""The app factory every service uses, and the function that serves it."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from typing import TYPE_CHECKING, Any

import uvicorn
from fastapi import APIRouter, FastAPI
from fastapi.middleware.cors import CORSMiddleware
from starlette.middleware import Middleware

from microservices.common.auth import RemoteIntrospector, TokenVerifier, redis_revocation_check
from microservices.common.errors import install_error_handlers
from microservices.common.health import HealthCheck
from microservices.common.health import router as health_router
from microservices.common.http import make_http_client
from microservices.common.logging import configure_logging
from microservices.common.metrics import router as metrics_router
from microservices.common.middleware import RequestContextMiddleware
from microservices.common.redis import CACHE_DB, make_redis
from microservices.common.service_auth import ServiceTokenProvider
from microservices.common.settings import ServiceSettings

if TYPE_CHECKING:
    from microservices.common.db import Database

Lifespan = Callable[[FastAPI], contextlib.AbstractAsyncContextManager[None]]


@contextlib.asynccontextmanager
async def _no_lifespan(app: FastAPI) -> AsyncIterator[None]:
    yield


def _common_lifespan(settings: ServiceSettings, service_lifespan: Lifespan) -> Lifespan:
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state = app.state
        state.http = make_http_client(settings)
        state.redis = make_redis(settings.redis_db_url(CACHE_DB))
        state.token_verifier = TokenVerifier(
            issuer=settings.jwt_issuer,
            audiences=[settings.jwt_audience],
            internal_audience=settings.jwt_internal_audience,
            jwks_url=settings.resolved_jwks_url,
            http=state.http,
        )
        state.token_verifier.revocation_check = redis_revocation_check(state.redis)
        # Personal API tokens reach every service unchanged through the gateway; the user service resolves them.
        state.token_verifier.introspector = RemoteIntrospector(
            http=state.http,
            url=f"{settings.user_service_url.rstrip('/')}/auth/introspect",
            service_tokens=ServiceTokenProvider.from_settings(settings, state.http),
        )
        checks: list[HealthCheck] = [HealthCheck("redis", _redis_probe(state.redis))]
        if settings.database_name is not None:
            # Imported here so that a service without a database (the gateway) never loads SQLAlchemy.
            from microservices.common.db import Database

            state.database = Database(
                settings.async_database_url(),
                pool_size=settings.database_pool_size,
                max_overflow=settings.database_max_overflow,
            )
            checks.insert(0, HealthCheck("database", _database_probe(state.database)))
        state.health_checks = checks
        try:
            async with service_lifespan(app):
                yield
        finally:
            if settings.database_name is not None:
                await state.database.dispose()
            await state.redis.aclose()
            await state.http.aclose()

    return lifespan


def _database_probe(database: Database) -> Callable[[], Any]:
    async def probe() -> None:
        await database.ping()

    return probe


def _redis_probe(client: Any) -> Callable[[], Any]:
    async def probe() -> None:
        await client.ping()

    return probe


def create_app(
    *,
    settings: ServiceSettings,
    title: str,
    description: str,
    routers: Sequence[APIRouter] = (),
    lifespan: Lifespan | None = None,
    openapi_tags: list[dict[str, Any]] | None = None,
    middleware: Sequence[Middleware] = (),
    app_class: type[FastAPI] = FastAPI,
) -> FastAPI:
    """A FastAPI app (or an `app_class` one) with the platform's logging, errors, request ids, metrics, health
    and auth."""
    configure_logging(service=settings.service_name, level=settings.log_level, json=settings.log_json)
    app = app_class(
        title=title,
        description=description,
        version=settings.version,
        lifespan=_common_lifespan(settings, lifespan or _no_lifespan),
        openapi_tags=openapi_tags,
    )
    app.state.settings = settings
    app.state.health_checks = []
    install_error_handlers(app)
    app.include_router(health_router)
    app.include_router(metrics_router)
    for router in routers:
        app.include_router(router)
    # A service's own middleware, outermost first, runs inside the platform's (request ids, CORS).
    app.user_middleware.extend(middleware)
    if settings.cors_origins:
        app.add_middleware(CORSMiddleware, **cors_options(settings))
    app.add_middleware(RequestContextMiddleware, service=settings.service_name, access_log=settings.access_log)
    return app


def cors_options(settings: ServiceSettings) -> dict[str, Any]:
    """Starlette's CORSMiddleware options for the configured allow-list of origins."""
    return {
        "allow_origins": settings.cors_origins,
        "allow_credentials": True,
        "allow_methods": ["*"],
        "allow_headers": ["*"],
        "expose_headers": ["X-Request-ID"],
    }


def serve(app: FastAPI | str, settings: ServiceSettings) -> None:
    """Run `app` with uvicorn on the settings' host and port, logging through the platform's handlers."""
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        workers=settings.workers if isinstance(app, str) else 1,
        log_config=None,
        access_log=False,
        server_header=False,
        proxy_headers=True,
        timeout_graceful_shutdown=10,
        loop="uvloop",
        http="httptools",
    )
