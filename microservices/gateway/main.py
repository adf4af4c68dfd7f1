"""API gateway: the one public API: routing, token checks, rate limits, CORS, aggregation, streaming."""

from fastapi import FastAPI

from microservices.common.app import create_app
from microservices.gateway.config import Settings
from microservices.gateway.router import router


def build_app(settings: Settings | None = None) -> FastAPI:
    """The api gateway's ASGI app."""
    return create_app(
        settings=settings or Settings(),
        title="API gateway",
        description="The one public API: routing, token checks, rate limits, CORS, aggregation, streaming.",
        routers=[router],
    )


def __getattr__(name: str) -> FastAPI:
    # `uvicorn microservices.gateway.main:app` works without building an app at import time.
    if name == "app":
        return build_app()
    raise AttributeError(name)
