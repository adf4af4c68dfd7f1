"""Plain ASGI middleware: request ids, access logs and request metrics, cheap enough for the gateway."""

from __future__ import annotations

import logging
import re
import time
import uuid
from typing import Any

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from microservices.common.errors import error_body
from microservices.common.logging import request_id_var
from microservices.common.metrics import REQUEST_LATENCY, REQUESTS

logger = logging.getLogger("access")

REQUEST_ID_HEADER = b"x-request-id"
# A caller's id is kept only when it cannot smuggle anything into logs or headers.
_VALID_REQUEST_ID = re.compile(rb"^[A-Za-z0-9._:\-]{1,128}$")
# Health and metrics probes come every few seconds and would drown the access log.
_QUIET_PATHS = frozenset({"/health", "/metrics"})
# Any other method a client invents is counted as OTHER, so that callers cannot multiply the metric's series.
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class RequestContextMiddleware:
    """Takes `X-Request-ID` from the request or makes one, returns it, logs and counts the request."""

    def __init__(self, app: ASGIApp, *, service: str, access_log: bool = True) -> None:
        self.app = app
        self.service = service
        self.access_log = access_log
        # The metrics' children by (method, route, status): looking them up by label on every request is dear.
        self._series: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        request_id = b""
        for name, value in scope["headers"]:
            if name == REQUEST_ID_HEADER:
                request_id = value
                break
        if not _VALID_REQUEST_ID.match(request_id):
            request_id = uuid.uuid4().hex.encode()
            scope["headers"] = [*scope["headers"], (REQUEST_ID_HEADER, request_id)]
        token = request_id_var.set(request_id.decode())
        started = time.perf_counter()
        status_code = 500
        response_started = False

        async def send_with_id(message: Message) -> None:
            nonlocal status_code, response_started
            if message["type"] == "http.response.start":
                status_code = message["status"]
                response_started = True
                message["headers"] = [*message.get("headers", []), (REQUEST_ID_HEADER, request_id)]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            # Rendered here rather than by Starlette's outermost handler, so the answer keeps the request id.
            logger.exception("unhandled error on %s %s", scope.get("method", "WS"), scope["path"])
            if response_started or scope["type"] != "http":
                raise
            await _send_internal_error(send_with_id, request_id.decode())
        finally:
            if scope["type"] == "http":
                self._record(scope, status_code, time.perf_counter() - started)
            request_id_var.reset(token)

    def _record(self, scope: Scope, status_code: int, elapsed_s: float) -> None:
        route = scope.get("route")
        # The route template, never the raw path, so that ids do not explode the metric's cardinality.
        template = getattr(route, "path", None) or "unmatched"
        method = scope["method"]
        key = (method if method in _METHODS else "OTHER", template, status_code)
        series = self._series.get(key)
        if series is None:
            series = (REQUESTS.labels(key[0], template, str(status_code)), REQUEST_LATENCY.labels(key[0], template))
            self._series[key] = series
        series[0].inc()
        series[1].observe(elapsed_s)
        path = scope["path"]
        if self.access_log and path not in _QUIET_PATHS:
            logger.info(
                "%s %s %s %.1fms",
                method,
                path,
                status_code,
                elapsed_s * 1000,
                extra={"status": status_code, "duration_ms": round(elapsed_s * 1000, 2), "path": path},
            )


async def _send_internal_error(send: Send, request_id: str) -> None:
    body = orjson.dumps(
        error_body("internal_error", f"An unexpected error occurred; quote request id {request_id} when reporting it.")
    )
    await send(
        {
            "type": "http.response.start",
            "status": 500,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})
