"""User service: accounts, login, tokens, roles, groups, permissions, audit log, external credentials."""

from fastapi import FastAPI

from microservices.common.app import create_app
from microservices.user_service.config import Settings
from microservices.user_service.router import router


def build_app(settings: Settings | None = None) -> FastAPI:
    """The user service's ASGI app."""
    return create_app(
        settings=settings or Settings(),
        title="User service",
        description="Accounts, login, tokens, roles, groups, permissions, audit log, external credentials.",
        routers=[router],
    )


def __getattr__(name: str) -> FastAPI:
    # `uvicorn microservices.user_service.main:app` works without building an app at import time.
    if name == "app":
        return build_app()
    raise AttributeError(name)
