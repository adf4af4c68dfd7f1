"""File manager: streaming upload, VCF validation, checksums, storage and access-controlled download."""

from fastapi import FastAPI

from microservices.common.app import create_app
from microservices.file_manager.config import Settings
from microservices.file_manager.router import router


def build_app(settings: Settings | None = None) -> FastAPI:
    """The file manager's ASGI app."""
    return create_app(
        settings=settings or Settings(),
        title="File manager",
        description="Streaming upload, VCF validation, checksums, storage and access-controlled download.",
        routers=[router],
    )


def __getattr__(name: str) -> FastAPI:
    # `uvicorn microservices.file_manager.main:app` works without building an app at import time.
    if name == "app":
        return build_app()
    raise AttributeError(name)
