"""WebSocket push: every replica subscribes to one Redis pub/sub pattern and forwards to its own sockets.

A new notification is published on `<prefix>user:<id>` (or `<prefix>admins` for the admins' shared ones), so
whichever replica holds a user's socket delivers it. Pub/sub keeps nothing: when the subscription is lost (Redis
restarted), whatever was published until it is back never arrives, so every socket is then sent
`{"type": "resync"}` and the web UI fetches its unread count again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict

import redis.asyncio as aioredis
from starlette.websockets import WebSocket

from microservices.common.auth import Principal
from microservices.notification.schemas import NotificationRead

logger = logging.getLogger(__name__)

RESYNC = '{"type":"resync"}'


class PushHub:
    """This replica's open sockets, by user, fed from Redis pub/sub."""

    def __init__(self, *, redis: aioredis.Redis, prefix: str) -> None:
        self.redis = redis
        self.prefix = prefix
        self.by_user: dict[int, set[WebSocket]] = defaultdict(set)
        self.admins: set[WebSocket] = set()
        self.subscribed = asyncio.Event()
        self.pushed_total = 0

    def channel(self, user_id: int | None) -> str:
        """The channel of one user's notifications, or of the admins' shared ones."""
        return f"{self.prefix}admins" if user_id is None else f"{self.prefix}user:{user_id}"

    def register(self, websocket: WebSocket, principal: Principal) -> None:
        if principal.user_id is not None:
            self.by_user[principal.user_id].add(websocket)
        if principal.is_admin:
            self.admins.add(websocket)

    def unregister(self, websocket: WebSocket, principal: Principal) -> None:
        if principal.user_id is not None:
            sockets = self.by_user.get(principal.user_id)
            if sockets is not None:
                sockets.discard(websocket)
                if not sockets:
                    del self.by_user[principal.user_id]
        self.admins.discard(websocket)

    @property
    def connections(self) -> int:
        return len({ws for sockets in self.by_user.values() for ws in sockets} | self.admins)

    async def publish(self, notification: NotificationRead) -> None:
        """Announce a committed notification to every replica."""
        message = '{"type":"notification","notification":' + notification.model_dump_json() + "}"
        # After Redis restarts, the pool's first connections are dead ones: pub/sub keeps nothing, so a publish
        # that fails on one would lose the push. Try again on a fresh connection before giving up.
        for attempt in range(3):
            try:
                await self.redis.publish(self.channel(notification.user_id), message)
                return
            except (aioredis.ConnectionError, aioredis.TimeoutError):
                if attempt == 2:
                    raise
                await asyncio.sleep(0.2 * (attempt + 1))

    async def _resync(self) -> None:
        """Tell every local socket that pushes may have been missed."""
        targets = {ws for sockets in self.by_user.values() for ws in sockets} | self.admins
        await asyncio.gather(*(ws.send_text(RESYNC) for ws in targets), return_exceptions=True)

    async def _forward(self, channel: str, message: str) -> None:
        if channel == f"{self.prefix}admins":
            targets = set(self.admins)
        else:
            try:
                user_id = int(channel.rsplit(":", 1)[1])
            except ValueError:
                return
            targets = set(self.by_user.get(user_id, ()))
        if not targets:
            return
        results = await asyncio.gather(*(ws.send_text(message) for ws in targets), return_exceptions=True)
        self.pushed_total += sum(1 for r in results if not isinstance(r, BaseException))

    async def run(self) -> None:
        """Forward published notifications to local sockets; resubscribe after Redis comes back."""
        lost = False
        while True:
            pubsub = self.redis.pubsub()
            try:
                await pubsub.psubscribe(f"{self.prefix}*")
                self.subscribed.set()
                if lost:
                    lost = False
                    await self._resync()
                while True:
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                    if message is None or message.get("type") != "pmessage":
                        continue
                    channel, data = message["channel"], message["data"]
                    channel = channel.decode() if isinstance(channel, bytes) else str(channel)
                    data = data.decode() if isinstance(data, bytes) else str(data)
                    await self._forward(channel, data)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                lost = True
                self.subscribed.clear()
                logger.warning("notification pub/sub lost (%s); resubscribing", exc)
                await asyncio.sleep(1.0)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
