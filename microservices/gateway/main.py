"""API gateway: the one public API: routing, token checks, rate limits, CORS, aggregation, streaming."""

import contextlib
from collections.abc import AsyncIterator

from fastapi import FastAPI
from starlette.middleware import Middleware

from microservices.common.app import create_app
from microservices.common.auth import RemoteIntrospector
from microservices.common.redis import GATEWAY_DB, make_redis
from microservices.common.service_auth import ServiceTokenProvider
from microservices.gateway.config import Settings
from microservices.gateway.frontend import frontend_router
from microservices.gateway.logbuffer import buffered_logging
from microservices.gateway.proxy import (
    Gateway,
    GatewayApp,
    ProxyMiddleware,
    SecurityHeadersMiddleware,
    proxy_stack,
)
from microservices.gateway.ratelimit import RateLimiter
from microservices.gateway.router import router
from microservices.gateway.service import OpenAPICache


def build_app(settings: Settings | None = None) -> FastAPI:
    """The api gateway's ASGI app."""
    settings = settings or Settings()
    gateway = Gateway(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state = app.state
        verifier = state.token_verifier
        # The gateway's own cache of API-token answers is short, so a revoked token stops working soon.
        verifier.introspector = RemoteIntrospector(
            http=state.http,
            url=f"{settings.user_service_url.rstrip('/')}/auth/introspect",
            service_tokens=ServiceTokenProvider.from_settings(settings, state.http),
            cache_s=settings.introspection_cache_s,
        )
        # A short timeout: a slow Redis must not hold up the limiter's reports.
        limits_redis = make_redis(settings.redis_db_url(GATEWAY_DB), timeout_s=0.5)
        limiter = None
        if settings.rate_limit_enabled:
            limiter = RateLimiter(
                redis=limits_redis,
                window_s=settings.rate_limit_window_s,
                default_limit=settings.rate_limit_default,
                tiers=settings.rate_limit_tiers,
                report_interval_s=settings.rate_limit_report_interval_s,
            )
            await limiter.start()
        await gateway.start(verifier=verifier, limiter=limiter)
        state.gateway = gateway
        state.openapi_cache = OpenAPICache()
        try:
            async with buffered_logging():
                yield
        finally:
            await gateway.close()
            if limiter is not None:
                await limiter.close()
            await limits_redis.aclose()

    routers = [router]
    if settings.frontend_dir is not None:
        routers.append(frontend_router(settings.frontend_dir))
    app = create_app(
        settings=settings,
        title="API gateway",
        description="The one public API: routing, token checks, rate limits, CORS, aggregation, streaming.",
        routers=routers,
        lifespan=lifespan,
        middleware=[Middleware(SecurityHeadersMiddleware), Middleware(ProxyMiddleware, gateway=gateway)],
        app_class=GatewayApp,
    )
    assert isinstance(app, GatewayApp)
    app.proxy_stack = proxy_stack(gateway, settings)
    return app


def __getattr__(name: str) -> FastAPI:
    # `uvicorn microservices.gateway.main:app` works without building an app at import time.
    if name == "app":
        return build_app()
    raise AttributeError(name)
