"""Fixtures of the notification tests: a real SMTP server, a real webhook receiver, the app with its own names."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import uvicorn
from aiohttp import web
from fastapi import FastAPI

from microservices.common.localinfra import free_port
from microservices.notification.config import Settings
from microservices.notification.main import build_app
from tests.harness import SmtpCatcher


@pytest.fixture(scope="session")
def smtp_server() -> Iterator[SmtpCatcher]:
    """A real SMTP server (aiosmtpd) on a free port."""
    catcher = SmtpCatcher(port=free_port())
    catcher.start()
    yield catcher
    catcher.stop()


@dataclass
class WebhookReceiver:
    """A real HTTP server that records each request and answers with the next status of `statuses`."""

    url: str = ""
    requests: list[dict[str, Any]] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)


@pytest.fixture
async def webhook_receiver() -> AsyncIterator[WebhookReceiver]:
    receiver = WebhookReceiver()

    async def hook(request: web.Request) -> web.Response:
        body = await request.read()
        receiver.requests.append({"headers": dict(request.headers), "body": body})
        status = receiver.statuses.pop(0) if receiver.statuses else 200
        return web.Response(status=status, text="ok" if status < 300 else "boom")

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    receiver.url = f"http://127.0.0.1:{port}/hook"
    yield receiver
    await runner.cleanup()


class StubDirectory:
    """The user service's answers, fixed for a test."""

    def __init__(self, emails: dict[int, str] | None = None, admins: list[str] | None = None) -> None:
        self.emails = emails or {}
        self.admins = admins or []
        self.fail = False

    async def email_of(self, user_id: int) -> str | None:
        if self.fail:
            raise RuntimeError("user service down")
        return self.emails.get(user_id)

    async def admin_emails(self) -> list[str]:
        return list(self.admins)


def unique_user_id() -> int:
    return random.randint(1_000_000, 2_000_000_000)


def make_settings(**overrides: Any) -> Settings:
    """Settings with stream and channel names of this test only, and fast retries."""
    tag = f"t{os.getpid()}-{uuid.uuid4().hex[:8]}"
    values: dict[str, Any] = {
        "events_stream_prefix": f"{tag}:events:",
        "pubsub_prefix": f"{tag}:notifications:",
        "consume_events": False,
        "email_retry_base_s": 0.1,
        "webhook_retry_base_s": 0.1,
        "delivery_poll_interval_s": 0.1,
        # The webhook receiver of these tests listens on 127.0.0.1.
        "webhook_allow_private_urls": True,
        "websocket_heartbeat_s": 25.0,
        "log_json": False,
        "access_log": False,
        **overrides,
    }
    return Settings(**values)


@contextlib.asynccontextmanager
async def serve_app(app: FastAPI) -> AsyncIterator[str]:
    """Serve `app` with uvicorn on a free port in this event loop; yield its base URL."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="on"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        assert not task.done(), "the server did not start"
        await asyncio.sleep(0.02)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


__all__ = ["StubDirectory", "build_app", "make_settings", "serve_app", "unique_user_id"]
