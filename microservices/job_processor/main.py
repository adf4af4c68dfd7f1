"""Job processor: imputation jobs: protocol adapters, status history, templates, batches, schedules."""

from fastapi import FastAPI

from microservices.common.app import create_app
from microservices.job_processor.config import Settings
from microservices.job_processor.router import router


def build_app(settings: Settings | None = None) -> FastAPI:
    """The job processor's ASGI app."""
    return create_app(
        settings=settings or Settings(),
        title="Job processor",
        description="Imputation jobs: protocol adapters, status history, templates, batches, schedules.",
        routers=[router],
    )


def __getattr__(name: str) -> FastAPI:
    # `uvicorn microservices.job_processor.main:app` works without building an app at import time.
    if name == "app":
        return build_app()
    raise AttributeError(name)
