"""Monitoring service: health of every component, metrics, alerts and dashboard statistics."""

from fastapi import FastAPI

from microservices.common.app import create_app
from microservices.monitoring.config import Settings
from microservices.monitoring.router import router


def build_app(settings: Settings | None = None) -> FastAPI:
    """The monitoring service's ASGI app."""
    return create_app(
        settings=settings or Settings(),
        title="Monitoring service",
        description="Health of every component, metrics, alerts and dashboard statistics.",
        routers=[router],
    )


def __getattr__(name: str) -> FastAPI:
    # `uvicorn microservices.monitoring.main:app` works without building an app at import time.
    if name == "app":
        return build_app()
    raise AttributeError(name)
