"""Notification service: in-app notifications, e-mail, preferences, WebSocket push and webhooks."""

from fastapi import FastAPI

from microservices.common.app import create_app
from microservices.notification.config import Settings
from microservices.notification.router import router


def build_app(settings: Settings | None = None) -> FastAPI:
    """The notification service's ASGI app."""
    return create_app(
        settings=settings or Settings(),
        title="Notification service",
        description="In-app notifications, e-mail, preferences, WebSocket push and webhooks.",
        routers=[router],
    )


def __getattr__(name: str) -> FastAPI:
    # `uvicorn microservices.notification.main:app` works without building an app at import time.
    if name == "app":
        return build_app()
    raise AttributeError(name)
