"""The Django worker's consumer of the registry's `service.changed` events (consumer group `django`).

It runs in a thread of the Django Celery worker. Applying an event is idempotent (an upsert keyed by the
registry id, or a delete), so a redelivered event does no harm; an entry is acknowledged once applied, and
entries left pending by an earlier run are applied first.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from typing import Any

import redis
from django.conf import settings
from django.db import close_old_connections

from federated_imputation.env import redis_url_with_db
from imputation.services.registry_sync import apply_service_changed
from microservices.common.events import SERVICE_CHANGED, Event, stream_name
from microservices.common.redis import EVENTS_DB

logger = logging.getLogger(__name__)

GROUP = "django"


class RegistryEventConsumer:
    """Reads `events:service.changed` with the `django` group and applies each event to the Django models."""

    def __init__(self, *, client: Any, block_ms: int = 1000) -> None:
        self.client = client
        self.stream = stream_name(SERVICE_CHANGED)
        self.name = f"{socket.gethostname()}-{os.getpid()}"
        self.block_ms = block_ms
        self.applied = 0
        self._stop = threading.Event()
        self._ready = False

    def ensure_group(self) -> None:
        try:
            self.client.xgroup_create(self.stream, GROUP, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        self._ready = True

    def poll(self, *, pending: bool = False) -> int:
        """Apply one batch: this consumer's pending entries when `pending`, else new ones; return how many."""
        if not self._ready:
            self.ensure_group()
        answer = self.client.xreadgroup(
            GROUP, self.name, {self.stream: "0" if pending else ">"}, count=50, block=None if pending else self.block_ms
        )
        handled = 0
        for _stream, entries in answer or []:
            for entry_id, fields in entries:
                if not fields:
                    self.client.xack(self.stream, GROUP, entry_id)
                    continue
                close_old_connections()
                try:
                    outcome = apply_service_changed(Event.from_fields(fields).payload)
                except Exception:
                    # Left pending: the next start (or the next pending pass) tries it again.
                    logger.exception("service.changed entry %s not applied", entry_id)
                    continue
                self.client.xack(self.stream, GROUP, entry_id)
                logger.info("service.changed entry %s applied: %s", entry_id, outcome)
                self.applied += 1
                handled += 1
        return handled

    def run(self) -> None:
        """Consume until stopped; survive Redis going away."""
        pending_pass = True
        while not self._stop.is_set():
            try:
                self.poll(pending=pending_pass)
                pending_pass = False
            except (redis.RedisError, OSError) as exc:
                logger.warning("registry event consumer: %s; retrying", exc)
                self._ready = False
                pending_pass = True
                self._stop.wait(2.0)

    def stop(self) -> None:
        self._stop.set()


_consumer: RegistryEventConsumer | None = None


def start_consumer() -> RegistryEventConsumer | None:
    """Start the consumer thread once per process (the Django worker calls this when ready)."""
    global _consumer
    if not settings.REGISTRY_EVENTS_ENABLED or _consumer is not None:
        return _consumer
    client = redis.Redis.from_url(
        redis_url_with_db(settings.REDIS_URL, EVENTS_DB), decode_responses=True, socket_timeout=10
    )
    _consumer = RegistryEventConsumer(client=client)
    threading.Thread(target=_consumer.run, name="registry-events", daemon=True).start()
    return _consumer


def stop_consumer() -> None:
    """Stop the consumer thread, if one runs."""
    if _consumer is not None:
        _consumer.stop()
