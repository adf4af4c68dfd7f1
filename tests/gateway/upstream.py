"""A tiny real upstream for gateway tests: echoes requests, streams uploads to disk, streams downloads, dawdles.

Run in-process (`serve_in_background`) or as its own process: `python -m tests.gateway.upstream PORT DIR`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import sys
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.types import ASGIApp
from starlette.websockets import WebSocket, WebSocketDisconnect

UPLOAD_DIR = Path(tempfile.gettempdir())


# Answers the dashboard aggregation expects from its peers.
CANNED: dict[str, object] = {
    "/notifications/unread-count": {"unread": 3},
    "/services": {
        "items": [
            {"id": 1, "is_available": True, "health_status": "healthy"},
            {"id": 2, "is_available": False, "health_status": "unhealthy"},
            {"id": 3, "is_available": True, "health_status": "degraded"},
        ],
        "total": 3,
        "page": 1,
        "page_size": 100,
    },
    "/dashboard/stats": {"uploads_today": 4},
    "/openapi.json": {
        "openapi": "3.1.0",
        "info": {"title": "echo", "version": "1"},
        "paths": {
            "/services": {"get": {"summary": "List services", "responses": {"200": {"description": "ok"}}}},
            "/internal/sync": {"post": {"summary": "Not public", "responses": {"200": {"description": "ok"}}}},
        },
        "components": {"schemas": {"Echo": {"type": "object"}}},
    },
}


async def anything(request: Request) -> Response:
    path = request.url.path
    if path in CANNED and request.method == "GET":
        return JSONResponse(CANNED[path])
    if path == "/jobs" and request.method == "GET":
        # Job totals by state, as the job processor's list reports them.
        statuses = tuple(request.query_params.getlist("status"))
        total = {(): 10, ("completed",): 6, ("failed",): 2}.get(statuses, 2)
        items = [{"id": n} for n in range(1, min(total, int(request.query_params.get("page_size", "20"))) + 1)]
        return JSONResponse({"items": items, "total": total, "page": 1, "page_size": 5})
    if path.endswith("/upload"):
        digest = hashlib.sha256()
        received = 0
        with tempfile.NamedTemporaryFile(dir=UPLOAD_DIR, delete=True) as target:
            async for chunk in request.stream():
                target.write(chunk)
                digest.update(chunk)
                received += len(chunk)
        return JSONResponse({"received": received, "sha256": digest.hexdigest()})
    if path.endswith("/download"):
        size = int(request.query_params.get("size", "0"))

        async def chunks() -> AsyncIterator[bytes]:
            sent = 0
            while sent < size:
                block = b"x" * min(65536, size - sent)
                sent += len(block)
                yield block

        return StreamingResponse(chunks(), media_type="application/octet-stream")
    if path.endswith("/stall"):
        delay = float(request.query_params.get("seconds", "5"))

        async def stalled() -> AsyncIterator[bytes]:
            await asyncio.sleep(delay)
            yield b"0123456789"

        return StreamingResponse(stalled(), headers={"content-length": "10"})
    if path.endswith("/slow"):
        await asyncio.sleep(float(request.query_params.get("seconds", "5")))
    if path.endswith("/redirect"):
        return Response(status_code=307, headers={"location": f"{request.base_url}jobs/elsewhere"})
    body = await request.body()
    return JSONResponse(
        {
            "method": request.method,
            "path": path,
            "raw_path": request.scope["raw_path"].decode(),
            "query": request.url.query,
            "headers": {k: v for k, v in request.headers.items()},
            "body_length": len(body),
        },
        headers={"x-upstream": "echo", "set-cookie": "upstream=1"},
    )


async def websocket_echo(websocket: WebSocket) -> None:
    if websocket.query_params.get("token") == "refuse":
        await websocket.close(code=4401)
        return
    await websocket.accept()
    await websocket.send_text(f"hello {websocket.headers.get('authorization')} {websocket.query_params.get('token')}")
    try:
        while True:
            await websocket.send_text("echo:" + await websocket.receive_text())
    except WebSocketDisconnect:
        return


app = Starlette(
    routes=[
        WebSocketRoute("/ws/notifications", websocket_echo),
        Route("/{path:path}", anything, methods=["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"]),
    ]
)


@contextlib.asynccontextmanager
async def serve_in_background(asgi: ASGIApp, port: int, *, lifespan: str = "off") -> AsyncIterator[uvicorn.Server]:
    """`asgi` served on 127.0.0.1:`port` by uvicorn inside the running event loop."""
    config = uvicorn.Config(asgi, host="127.0.0.1", port=port, log_level="warning", lifespan=lifespan, log_config=None)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    # uvicorn offers a flag, not an event, for "listening".
    while not server.started:  # noqa: ASYNC110
        await asyncio.sleep(0.01)
    try:
        yield server
    finally:
        server.should_exit = True
        await task


if __name__ == "__main__":
    UPLOAD_DIR = Path(sys.argv[2])
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", loop="uvloop", http="httptools")
