"""Service registry: external imputation services, their reference panels, and their health."""

from fastapi import FastAPI

from microservices.common.app import create_app
from microservices.service_registry.config import Settings
from microservices.service_registry.router import router


def build_app(settings: Settings | None = None) -> FastAPI:
    """The service registry's ASGI app."""
    return create_app(
        settings=settings or Settings(),
        title="Service registry",
        description="External imputation services, their reference panels, and their health.",
        routers=[router],
    )


def __getattr__(name: str) -> FastAPI:
    # `uvicorn microservices.service_registry.main:app` works without building an app at import time.
    if name == "app":
        return build_app()
    raise AttributeError(name)
