"""Celery worker heartbeats in Redis, so that monitoring can tell a live worker from a dead one."""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from typing import Any

import redis

logger = logging.getLogger(__name__)

HEARTBEAT_PREFIX = "heartbeat:celery"
HEARTBEAT_INTERVAL_S = 10.0
# A worker is dead when three beats in a row are missing.
HEARTBEAT_TTL_S = 30


def heartbeat_key(component: str, hostname: str) -> str:
    """The Redis key one worker of `component` refreshes."""
    return f"{HEARTBEAT_PREFIX}:{component}:{hostname}"


class HeartbeatThread(threading.Thread):
    """Refreshes the worker's key every few seconds until stopped."""

    def __init__(self, *, redis_url: str, component: str, hostname: str | None = None) -> None:
        super().__init__(name=f"heartbeat-{component}", daemon=True)
        self._client = redis.Redis.from_url(redis_url, socket_timeout=5, socket_connect_timeout=5)
        self._key = heartbeat_key(component, hostname or socket.gethostname())
        self._stopped = threading.Event()

    def run(self) -> None:
        while not self._stopped.is_set():
            try:
                self._client.set(self._key, str(time.time()), ex=HEARTBEAT_TTL_S)
            except redis.RedisError as exc:
                logger.warning("heartbeat not written: %s", exc)
            self._stopped.wait(HEARTBEAT_INTERVAL_S)

    def stop(self) -> None:
        """Stop beating and remove the key, so a clean shutdown is seen at once."""
        self._stopped.set()
        with contextlib.suppress(redis.RedisError):
            self._client.delete(self._key)


def install_celery_heartbeat(celery_app: Any, *, component: str, redis_url: str) -> None:
    """Start a heartbeat thread in every worker of `celery_app` (not in beat or in clients)."""
    from celery.signals import worker_ready, worker_shutdown

    state: dict[str, HeartbeatThread] = {}

    @worker_ready.connect(weak=False)
    def _start(sender: Any = None, **_: Any) -> None:
        if sender is None or getattr(sender, "app", None) is not celery_app:
            return
        thread = HeartbeatThread(redis_url=redis_url, component=component, hostname=sender.hostname)
        state["thread"] = thread
        thread.start()

    @worker_shutdown.connect(weak=False)
    def _stop(**_: Any) -> None:
        thread = state.pop("thread", None)
        if thread is not None:
            thread.stop()


def live_workers(client: redis.Redis, component: str | None = None) -> list[str]:
    """Keys of the workers whose heartbeat is current."""
    pattern = f"{HEARTBEAT_PREFIX}:{component}:*" if component else f"{HEARTBEAT_PREFIX}:*"
    return sorted(k.decode() if isinstance(k, bytes) else str(k) for k in client.scan_iter(match=pattern))


async def live_workers_async(client: Any, component: str) -> list[str]:
    """Keys of `component`'s workers whose heartbeat is current (asyncio client)."""
    keys = [k async for k in client.scan_iter(match=f"{HEARTBEAT_PREFIX}:{component}:*")]
    return sorted(k.decode() if isinstance(k, bytes) else str(k) for k in keys)
