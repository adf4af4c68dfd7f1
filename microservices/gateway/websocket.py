"""The WebSocket proxy: `/ws/...` to the notification service, messages relayed both ways until one side closes.

The gateway checks no token here: the notification service verifies the caller itself (DESIGN.md), from the
Authorization header or the query string, both forwarded unchanged.
"""

from __future__ import annotations

import asyncio
import logging

import aiohttp
from starlette.types import Receive, Scope, Send
from yarl import URL

from microservices.gateway.breaker import CircuitBreaker

logger = logging.getLogger(__name__)

_FORWARDED_HEADERS = frozenset({b"authorization", b"cookie", b"origin", b"x-request-id", b"user-agent"})
# Close code 1013 "try again later" when the upstream cannot be reached; a caller it refused is refused here too
# (the handshake is answered 403).
TRY_AGAIN_LATER = 1013


async def proxy_websocket(
    scope: Scope,
    receive: Receive,
    send: Send,
    *,
    session: aiohttp.ClientSession,
    base_url: str,
    breaker: CircuitBreaker,
) -> None:
    """Relay one WebSocket connection to the same path on `base_url`."""
    message = await receive()
    if message["type"] != "websocket.connect":
        return
    url = base_url.replace("http", "ws", 1) + (scope.get("raw_path") or scope["path"].encode()).decode("latin-1")
    if scope.get("query_string"):
        url += "?" + scope["query_string"].decode("latin-1")
    headers = [(n.decode("latin-1"), v.decode("latin-1")) for n, v in scope["headers"] if n in _FORWARDED_HEADERS]
    if not breaker.allow():
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.close", "code": TRY_AGAIN_LATER})
        return
    try:
        upstream = await session.ws_connect(
            URL(url, encoded=True),
            headers=headers,
            protocols=scope.get("subprotocols") or (),
            autoping=True,
            timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=5.0),
        )
    except aiohttp.WSServerHandshakeError as exc:
        breaker.record_success()
        logger.info("notification service refused a WebSocket: HTTP %s", exc.status)
        await send({"type": "websocket.close"})
        return
    except (aiohttp.ClientError, TimeoutError) as exc:
        breaker.record_failure()
        logger.warning("notification WebSocket unreachable: %s", exc)
        # Accepted and closed at once, so that the browser sees why (a refused handshake tells it nothing).
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.close", "code": TRY_AGAIN_LATER})
        return
    breaker.record_success()
    await send({"type": "websocket.accept", "subprotocol": upstream.protocol})

    async def client_to_upstream() -> None:
        while True:
            incoming = await receive()
            if incoming["type"] == "websocket.disconnect":
                await upstream.close()
                return
            if incoming.get("text") is not None:
                await upstream.send_str(incoming["text"])
            elif incoming.get("bytes") is not None:
                await upstream.send_bytes(incoming["bytes"])

    async def upstream_to_client() -> None:
        async for frame in upstream:
            if frame.type is aiohttp.WSMsgType.TEXT:
                await send({"type": "websocket.send", "text": frame.data})
            elif frame.type is aiohttp.WSMsgType.BINARY:
                await send({"type": "websocket.send", "bytes": frame.data})
        await send({"type": "websocket.close", "code": upstream.close_code or 1000})

    async with upstream:
        tasks = [asyncio.create_task(client_to_upstream()), asyncio.create_task(upstream_to_client())]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
