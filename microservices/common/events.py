"""Domain events: a transactional outbox in the producer's database, Redis Streams, consumer groups.

Producing. A producer adds the outbox to its tables and emits inside the transaction of the change::

    outbox_table(Base.metadata)                      # models.py; migration: create_outbox_table(op)
    await emit(session, topic="job.status.updated", payload={...}, producer="job_processor")
    emit_sync(session, topic=..., payload=..., producer=...)   # Celery tasks, Django-style sync code

and runs the relay in its lifespan (`async with run_outbox_relay(app): yield`). The relay publishes unpublished
rows (`SELECT ... FOR UPDATE SKIP LOCKED`, so replicas share the work) to the Redis Stream `events:<topic>` on
`REDIS_URL` database 3 and marks them published. A NOTIFY sent with the insert wakes it as soon as the
transaction commits; a short poll covers a lost notification. While Redis is away rows stay unpublished and the
relay keeps retrying, so nothing is lost.

Consuming. A consumer adds `processed_event_table(Base.metadata)` (migration: `create_processed_event_table(op)`)
and runs `async with run_event_consumer(app, group="notification", handlers={topic: handler}): yield`. Each
service reads with its own consumer group (XREADGROUP); a handler `async def handle(session, event) -> None` runs
in a transaction that also records the event id, so a redelivered event is skipped (idempotent); the entry is
acknowledged after that commit. Entries left unacknowledged longer than `claim_idle_ms` (a crashed consumer, a
failed handler) are taken over with XAUTOCLAIM by any consumer of the group; after `max_deliveries` failed
deliveries an entry goes to the dead-letter stream `events:dead` and is acknowledged. Work that must happen
only once the handler's transaction is committed (a WebSocket push) is registered with `after_commit`: entries
read together are handled in one transaction, and if one handler fails they are handled again one by one, so a
handler may run twice but only one run is ever committed.

Envelope (the stream entry's fields): `id` (uuid), `topic`, `occurred_at` (ISO 8601, UTC), `producer`,
`version` (1), `payload` (JSON object). Topics and their payloads:

- `job.status.updated` {job_id, user_id, job_name, service_id, old_status, new_status, message, occurred_at}
- `file.upload.completed` {file_id, user_id, filename, size_bytes, sha256}
- `service.health.changed` {service_id, name, old_status, new_status, checked_at, error}
- `service.changed` {service_id, action, origin, service}
- `user.action.logged` {user_id, action, ...}
- `notification.requested` {user_id (null: every admin), type, title, message, link}
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import socket
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg
import redis.asyncio as aioredis
from fastapi import FastAPI
from redis.exceptions import RedisError, ResponseError
from sqlalchemy import (
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    Uuid,
    delete,
    func,
    insert,
    select,
    text,
    tuple_,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session

from microservices.common.health import HealthCheck
from microservices.common.redis import EVENTS_DB

logger = logging.getLogger(__name__)

ENVELOPE_VERSION = 1
STREAM_PREFIX = "events:"
DEAD_LETTER_TOPIC = "dead"
NOTIFY_CHANNEL = "outbox_event"

JOB_STATUS_UPDATED = "job.status.updated"
FILE_UPLOAD_COMPLETED = "file.upload.completed"
SERVICE_HEALTH_CHANGED = "service.health.changed"
SERVICE_CHANGED = "service.changed"
USER_ACTION_LOGGED = "user.action.logged"
NOTIFICATION_REQUESTED = "notification.requested"
TOPICS = (
    JOB_STATUS_UPDATED,
    FILE_UPLOAD_COMPLETED,
    SERVICE_HEALTH_CHANGED,
    SERVICE_CHANGED,
    USER_ACTION_LOGGED,
    NOTIFICATION_REQUESTED,
)
_TOPIC_PATTERN = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z0-9_]+)+$")


# --- tables -------------------------------------------------------------------------------------------------------


# The relay's query: the partial index keeps it cheap however many published rows accumulate.
_UNPUBLISHED_INDEX = "ix_outbox_event_unpublished"


def _outbox_columns() -> list[Any]:
    return [
        Column("id", Uuid, primary_key=True),
        Column("topic", String(100), nullable=False),
        Column("payload", JSONB, nullable=False),
        Column("producer", String(50), nullable=False),
        Column("occurred_at", DateTime(timezone=True), nullable=False),
        Column("published_at", DateTime(timezone=True), nullable=True),
        Column("attempts", Integer, nullable=False, server_default="0"),
        Column("last_error", Text, nullable=True),
    ]


def _processed_columns() -> list[Any]:
    return [
        Column("consumer", String(100), primary_key=True),
        Column("event_id", Uuid, primary_key=True),
        Column("topic", String(100), nullable=False),
        Column("processed_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    ]


def outbox_table(metadata: MetaData) -> Table:
    """The `outbox_event` table in a producer's metadata (added once; later calls return it)."""
    if "outbox_event" in metadata.tables:
        return metadata.tables["outbox_event"]
    table = Table("outbox_event", metadata, *_outbox_columns())
    Index(_UNPUBLISHED_INDEX, table.c.occurred_at, postgresql_where=table.c.published_at.is_(None))
    return table


def processed_event_table(metadata: MetaData) -> Table:
    """The `processed_event` table in a consumer's metadata: event ids each consumer group has handled."""
    if "processed_event" in metadata.tables:
        return metadata.tables["processed_event"]
    return Table("processed_event", metadata, *_processed_columns())


# Stand-alone copies used for DML, so that emit() needs nothing from the caller but its session.
_OUTBOX = outbox_table(MetaData())
_PROCESSED = processed_event_table(MetaData())


def create_outbox_table(op: Any) -> None:
    """Alembic: create `outbox_event` and its index of unpublished rows (call in a revision's upgrade())."""
    op.create_table("outbox_event", *_outbox_columns())
    op.create_index(_UNPUBLISHED_INDEX, "outbox_event", ["occurred_at"], postgresql_where=text("published_at IS NULL"))


def drop_outbox_table(op: Any) -> None:
    """Alembic: drop `outbox_event` (call in a revision's downgrade())."""
    op.drop_index(_UNPUBLISHED_INDEX, table_name="outbox_event")
    op.drop_table("outbox_event")


def create_processed_event_table(op: Any) -> None:
    """Alembic: create `processed_event` (call in a revision's upgrade())."""
    op.create_table("processed_event", *_processed_columns())


def drop_processed_event_table(op: Any) -> None:
    """Alembic: drop `processed_event` (call in a revision's downgrade())."""
    op.drop_table("processed_event")


# --- envelope -----------------------------------------------------------------------------------------------------


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, uuid.UUID | Decimal):
        return str(value)
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def to_json(value: Any) -> str:
    """JSON text of a payload; datetimes, UUIDs and decimals become strings."""
    return json.dumps(value, default=_json_default, separators=(",", ":"))


@dataclass(frozen=True)
class Event:
    """One domain event as it travels on the bus."""

    id: str
    topic: str
    occurred_at: datetime
    producer: str
    payload: dict[str, Any]
    version: int = ENVELOPE_VERSION

    def to_fields(self) -> dict[str, str]:
        """The stream entry's fields."""
        return {
            "id": self.id,
            "topic": self.topic,
            "occurred_at": self.occurred_at.isoformat(),
            "producer": self.producer,
            "version": str(self.version),
            "payload": to_json(self.payload),
        }

    @classmethod
    def from_fields(cls, fields: Mapping[str, str]) -> Event:
        """Parse a stream entry's fields; raises ValueError or KeyError on a malformed entry."""
        payload = json.loads(fields["payload"])
        if not isinstance(payload, dict):
            raise ValueError("the payload is not a JSON object")
        return cls(
            id=str(uuid.UUID(fields["id"])),
            topic=fields["topic"],
            occurred_at=datetime.fromisoformat(fields["occurred_at"]),
            producer=fields["producer"],
            version=int(fields.get("version", ENVELOPE_VERSION)),
            payload=payload,
        )


def stream_name(topic: str, prefix: str = STREAM_PREFIX) -> str:
    """The Redis Stream of `topic`."""
    return f"{prefix}{topic}"


def _outbox_values(topic: str, payload: Mapping[str, Any], producer: str) -> dict[str, Any]:
    if not _TOPIC_PATTERN.match(topic):
        raise ValueError(f"{topic!r} is not a topic name (dotted lower-case words)")
    return {
        "id": uuid.uuid4(),
        "topic": topic,
        # Normalised through JSON now, so that what is stored is exactly what consumers will read.
        "payload": json.loads(to_json(dict(payload))),
        "producer": producer,
        "occurred_at": datetime.now(UTC),
    }


_NOTIFY = text(f"SELECT pg_notify('{NOTIFY_CHANNEL}', '')")
_NOTIFIED = "outbox_notified_transaction"


async def emit(session: AsyncSession, *, topic: str, payload: Mapping[str, Any], producer: str) -> str:
    """Write an event to the outbox in the caller's transaction; it is published once that commits."""
    (event_id,) = await emit_many(session, [(topic, payload)], producer=producer)
    return event_id


async def emit_many(
    session: AsyncSession, events: Sequence[tuple[str, Mapping[str, Any]]], *, producer: str
) -> list[str]:
    """`emit` for several events of one transaction, written in one statement (topic and payload each)."""
    if not events:
        return []
    rows = [_outbox_values(topic, payload, producer) for topic, payload in events]
    await session.execute(insert(_OUTBOX), rows)
    # NOTIFY is transactional: the relay is woken at commit, never for a rolled-back event. Once a transaction.
    transaction = session.get_transaction()
    if session.info.get(_NOTIFIED) is not transaction:
        await session.execute(_NOTIFY)
        session.info[_NOTIFIED] = transaction
    return [str(row["id"]) for row in rows]


def emit_sync(session: Session, *, topic: str, payload: Mapping[str, Any], producer: str) -> str:
    """`emit` for synchronous code (Celery tasks, scripts)."""
    values = _outbox_values(topic, payload, producer)
    session.execute(insert(_OUTBOX).values(**values))
    transaction = session.get_transaction()
    if session.info.get(_NOTIFIED) is not transaction:
        session.execute(_NOTIFY)
        session.info[_NOTIFIED] = transaction
    return str(values["id"])


def events_redis(url: str, *, timeout_s: float = 5.0) -> aioredis.Redis:
    """A Redis client for the event streams (answers decoded to str)."""
    return aioredis.Redis.from_url(
        url, socket_timeout=timeout_s, socket_connect_timeout=min(timeout_s, 2.0), decode_responses=True
    )


def _events_url(app: FastAPI) -> str:
    settings = app.state.settings
    return str(getattr(settings, "events_redis_url", None) or settings.redis_db_url(EVENTS_DB))


def _stream_prefix(app: FastAPI) -> str:
    return str(getattr(app.state.settings, "events_stream_prefix", STREAM_PREFIX))


async def delete_in_batches(
    sessionmaker: async_sessionmaker[AsyncSession], table: Table, condition: Any, *, batch_size: int = 5000
) -> int:
    """Delete the rows matching `condition`, a batch per transaction so that no lock is held for long."""
    key = list(table.primary_key.columns)
    total = 0
    while True:
        chosen = select(*key).where(condition).limit(batch_size)
        async with sessionmaker() as session, session.begin():
            result = await session.execute(delete(table).where(tuple_(*key).in_(chosen)))
        deleted = int(result.rowcount or 0)  # type: ignore[attr-defined]
        total += deleted
        if deleted < batch_size:
            return total


# --- relay --------------------------------------------------------------------------------------------------------


class OutboxRelay:
    """Publishes a producer's unpublished outbox rows to Redis Streams and marks them published."""

    def __init__(
        self,
        *,
        engine: AsyncEngine,
        redis: aioredis.Redis,
        prefix: str = STREAM_PREFIX,
        batch_size: int = 200,
        poll_interval_s: float = 1.0,
        max_backoff_s: float = 5.0,
        stream_maxlen: int = 100_000,
        retention_s: float = 7 * 86400,
        prune_interval_s: float = 3600,
    ) -> None:
        self.engine = engine
        self.sessionmaker = async_sessionmaker(engine, expire_on_commit=False)
        self.redis = redis
        self.prefix = prefix
        self.batch_size = batch_size
        self.poll_interval_s = poll_interval_s
        self.max_backoff_s = max_backoff_s
        self.stream_maxlen = stream_maxlen
        self.retention_s = retention_s
        self.prune_interval_s = prune_interval_s
        self._next_prune = 0.0
        self.published_total = 0
        self.last_error: str | None = None
        self._wake = asyncio.Event()
        self._listener: asyncpg.Connection | None = None

    async def publish_batch(self) -> int:
        """Publish up to one batch of unpublished rows; return how many were published."""
        async with self.sessionmaker() as session, session.begin():
            rows = (
                await session.execute(
                    select(_OUTBOX)
                    .where(_OUTBOX.c.published_at.is_(None))
                    .order_by(_OUTBOX.c.occurred_at)
                    .limit(self.batch_size)
                    .with_for_update(skip_locked=True)
                )
            ).all()
            if not rows:
                return 0
            ids = [row.id for row in rows]
            failure: Exception | None = None
            try:
                async with self.redis.pipeline(transaction=False) as pipe:
                    for row in rows:
                        event = Event(
                            id=str(row.id),
                            topic=row.topic,
                            occurred_at=row.occurred_at,
                            producer=row.producer,
                            payload=row.payload,
                        )
                        pipe.xadd(
                            stream_name(row.topic, self.prefix),
                            event.to_fields(),  # type: ignore[arg-type]
                            maxlen=self.stream_maxlen,
                            approximate=True,
                        )
                    await pipe.execute()
            except (RedisError, OSError) as exc:
                # Keep the rows unpublished; count the attempt so a stuck backlog is visible.
                failure = exc
                await session.execute(
                    update(_OUTBOX)
                    .where(_OUTBOX.c.id.in_(ids))
                    .values(attempts=_OUTBOX.c.attempts + 1, last_error=str(exc)[:500])
                )
            else:
                await session.execute(
                    update(_OUTBOX)
                    .where(_OUTBOX.c.id.in_(ids))
                    .values(published_at=func.now(), attempts=_OUTBOX.c.attempts + 1, last_error=None)
                )
        if failure is not None:
            raise failure
        self.published_total += len(rows)
        return len(rows)

    async def drain(self) -> int:
        """Publish until nothing is left; return how many were published."""
        total = 0
        while (published := await self.publish_batch()) > 0:
            total += published
        return total

    async def prune(self) -> int:
        """Delete the rows published more than `retention_s` ago; return how many."""
        cutoff = datetime.now(UTC) - timedelta(seconds=self.retention_s)
        return await delete_in_batches(self.sessionmaker, _OUTBOX, _OUTBOX.c.published_at < cutoff)

    async def _listen(self) -> None:
        if self._listener is not None and not self._listener.is_closed():
            return
        url = self.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        try:
            self._listener = await asyncpg.connect(url, timeout=5)
            await self._listener.add_listener(NOTIFY_CHANNEL, lambda *_: self._wake.set())
        except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
            logger.warning("outbox relay polls without LISTEN: %s", exc)
            self._listener = None

    async def run(self) -> None:
        """Publish forever: woken by NOTIFY, polling as a fallback, backing off while Redis is away."""
        backoff = 0.0
        while True:
            await self._listen()
            try:
                self._wake.clear()
                await self.drain()
                if (now := time.monotonic()) >= self._next_prune:
                    self._next_prune = now + self.prune_interval_s
                    await self.prune()
                backoff, self.last_error = 0.0, None
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                backoff = min(self.max_backoff_s, max(0.2, backoff * 2))
                self.last_error = f"{type(exc).__name__}: {exc}"[:300]
                logger.warning("outbox relay could not publish, retrying in %.1f s: %s", backoff, exc)
                await asyncio.sleep(backoff)
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.poll_interval_s)

    async def close(self) -> None:
        """Close the LISTEN connection."""
        if self._listener is not None:
            with contextlib.suppress(Exception):
                await self._listener.close()
            self._listener = None

    async def backlog(self) -> tuple[int, float]:
        """How many rows wait to be published, and the age in seconds of the oldest."""
        async with self.sessionmaker() as session:
            row = (
                await session.execute(
                    select(func.count(), func.min(_OUTBOX.c.occurred_at)).where(_OUTBOX.c.published_at.is_(None))
                )
            ).one()
        count, oldest = int(row[0]), row[1]
        age = (datetime.now(UTC) - oldest).total_seconds() if oldest is not None else 0.0
        return count, age


def outbox_health_check(relay: OutboxRelay, *, max_age_s: float = 60.0) -> HealthCheck:
    """A non-critical check: a warning while events wait longer than `max_age_s` to be published."""

    async def probe() -> str | None:
        count, age = await relay.backlog()
        if count and age > max_age_s:
            reason = f" ({relay.last_error})" if relay.last_error else ""
            return f"{count} events have waited {age:.0f} s to be published{reason}."
        return None

    return HealthCheck("event_outbox", probe, critical=False)


@contextlib.asynccontextmanager
async def run_outbox_relay(app: FastAPI, **options: Any) -> AsyncIterator[OutboxRelay]:
    """Run an OutboxRelay for the app's database during a lifespan (`async with run_outbox_relay(app): ...`)."""
    redis = events_redis(_events_url(app))
    relay = OutboxRelay(engine=app.state.database.engine, redis=redis, prefix=_stream_prefix(app), **options)
    app.state.outbox_relay = relay
    app.state.health_checks.append(outbox_health_check(relay))
    task = asyncio.create_task(relay.run(), name="outbox-relay")
    try:
        yield relay
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await relay.close()
        await redis.aclose()


# --- consumer -----------------------------------------------------------------------------------------------------

Handler = Callable[[AsyncSession, Event], Awaitable[None]]
AfterCommit = Callable[[], Awaitable[None]]


def after_commit(session: AsyncSession, callback: AfterCommit) -> None:
    """Run `callback` once the handler's transaction has committed (side effects that cannot be undone)."""
    session.info.setdefault("after_commit", []).append(callback)


class EventConsumer:
    """One consumer of a service's consumer group: handles, remembers and acknowledges events."""

    def __init__(
        self,
        *,
        redis: aioredis.Redis,
        sessionmaker: async_sessionmaker[AsyncSession],
        group: str,
        handlers: Mapping[str, Handler],
        consumer_name: str | None = None,
        prefix: str = STREAM_PREFIX,
        block_ms: int = 1000,
        batch_size: int = 100,
        claim_idle_ms: int = 30_000,
        max_deliveries: int = 5,
        retention_s: float = 30 * 86400,
        prune_interval_s: float = 3600,
    ) -> None:
        self.redis = redis
        self.sessionmaker = sessionmaker
        self.group = group
        self.handlers = dict(handlers)
        self.name = consumer_name or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.prefix = prefix
        self.block_ms = block_ms
        self.batch_size = batch_size
        self.claim_idle_ms = claim_idle_ms
        self.max_deliveries = max_deliveries
        # What was handled is remembered (to skip redeliveries) for far longer than a stream keeps its entries.
        self.retention_s = retention_s
        self.prune_interval_s = prune_interval_s
        self._next_prune = 0.0
        self.streams = {stream_name(topic, prefix): topic for topic in self.handlers}
        self.handled_total = 0
        self.skipped_total = 0
        self.dead_lettered_total = 0
        self._groups_ready = False
        self._last_claim = 0.0
        self.failing_since: float | None = None
        self.last_error: str | None = None

    async def ensure_groups(self) -> None:
        """Create the group on every stream it reads, from the start of the stream (idempotent)."""
        for stream in self.streams:
            try:
                await self.redis.xgroup_create(stream, self.group, id="0", mkstream=True)
            except ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise
        self._groups_ready = True

    async def poll(self, *, block_ms: int | None = None) -> int:
        """Claim stale entries, then read new ones and handle them; return how many entries were handled."""
        if not self._groups_ready:
            await self.ensure_groups()
        handled = 0
        loop_time = asyncio.get_running_loop().time()
        if loop_time - self._last_claim >= min(1.0, self.claim_idle_ms / 2000):
            self._last_claim = loop_time
            handled += await self.claim_stale()
        answer: Any = await self.redis.xreadgroup(
            self.group,
            self.name,
            dict.fromkeys(self.streams, ">"),
            count=self.batch_size,
            block=self.block_ms if block_ms is None else block_ms,
        )
        for stream, entries in answer or []:
            await self.deliver_batch(stream, entries)
            handled += len(entries)
        return handled

    async def claim_stale(self) -> int:
        """Take over entries another consumer (or an earlier attempt) left unacknowledged too long."""
        handled = 0
        for stream in self.streams:
            start = "0-0"
            while True:
                answer = await self.redis.xautoclaim(
                    stream, self.group, self.name, self.claim_idle_ms, start_id=start, count=self.batch_size
                )
                start, entries = answer[0], answer[1]
                # An entry trimmed from the stream meanwhile comes back empty.
                present = [(entry[0], entry[1]) for entry in entries if entry and entry[1] is not None]
                await self.deliver_batch(stream, present, redelivered=True)
                handled += len(present)
                if start in ("0-0", b"0-0") or not entries:
                    break
        return handled

    async def deliver_batch(
        self, stream: str, entries: list[tuple[str, Mapping[str, str]]], *, redelivered: bool = False
    ) -> None:
        """Handle entries of one stream in one transaction; on any failure, one by one so only the culprit fails."""
        events: list[tuple[str, Event]] = []
        for entry_id, fields in entries:
            try:
                event = Event.from_fields(fields)
            except (KeyError, ValueError, TypeError) as exc:
                await self._dead_letter(stream, entry_id, fields, f"malformed envelope: {exc}")
                continue
            if redelivered and await self._deliveries(stream, entry_id) > self.max_deliveries:
                await self._dead_letter(stream, entry_id, fields, "too many failed deliveries")
                continue
            events.append((entry_id, event))
        if len(events) > 1:
            try:
                callbacks = await self._handle_together([event for _, event in events])
            except Exception as exc:
                logger.info("a batch of %s events failed (%s); handling them one by one", len(events), exc)
            else:
                await self._run_callbacks(callbacks)
                await self.redis.xack(stream, self.group, *(entry_id for entry_id, _ in events))
                return
        fields_of = dict(entries)
        for entry_id, event in events:
            await self.deliver(stream, entry_id, fields_of[entry_id], event=event)

    async def _handle_together(self, events: list[Event]) -> list[AfterCommit]:
        """Handle several events in one transaction (one commit instead of one each); raises if any fails."""
        callbacks: list[AfterCommit] = []
        async with self.sessionmaker() as session:
            async with session.begin():
                new_ids = set(
                    (
                        await session.scalars(
                            pg_insert(_PROCESSED)
                            .values(
                                [
                                    {"consumer": self.group, "event_id": uuid.UUID(e.id), "topic": e.topic}
                                    for e in events
                                ]
                            )
                            .on_conflict_do_nothing()
                            .returning(_PROCESSED.c.event_id)
                        )
                    ).all()
                )
                seen: set[uuid.UUID] = set()
                for event in events:
                    event_id = uuid.UUID(event.id)
                    if event_id not in new_ids or event_id in seen:
                        continue
                    seen.add(event_id)
                    handler = self.handlers.get(event.topic)
                    if handler is not None:
                        await handler(session, event)
            callbacks = session.info.pop("after_commit", [])
        self.handled_total += len(seen)
        self.skipped_total += len(events) - len(seen)
        return callbacks

    async def _run_callbacks(self, callbacks: list[AfterCommit]) -> None:
        for callback in callbacks:
            try:
                await callback()
            except Exception as exc:
                logger.warning("after-commit work failed: %s", exc)

    async def deliver(
        self,
        stream: str,
        entry_id: str,
        fields: Mapping[str, str],
        *,
        redelivered: bool = False,
        event: Event | None = None,
    ) -> None:
        """Handle one entry; acknowledge it when handled, dead-letter it when it keeps failing."""
        if event is None:
            try:
                event = Event.from_fields(fields)
            except (KeyError, ValueError, TypeError) as exc:
                await self._dead_letter(stream, entry_id, fields, f"malformed envelope: {exc}")
                return
            if redelivered and await self._deliveries(stream, entry_id) > self.max_deliveries:
                await self._dead_letter(stream, entry_id, fields, "too many failed deliveries")
                return
        try:
            await self.handle(event)
        except Exception as exc:
            logger.warning("handler for %s failed on event %s: %s", event.topic, event.id, exc)
            if await self._deliveries(stream, entry_id) >= self.max_deliveries:
                await self._dead_letter(stream, entry_id, fields, f"{type(exc).__name__}: {exc}"[:500])
            return
        await self.redis.xack(stream, self.group, entry_id)

    async def handle(self, event: Event) -> bool:
        """Run the topic's handler once per event id; False when the event had been handled before."""
        handler = self.handlers.get(event.topic)
        async with self.sessionmaker() as session:
            async with session.begin():
                first_time = await session.scalar(
                    pg_insert(_PROCESSED)
                    .values(consumer=self.group, event_id=uuid.UUID(event.id), topic=event.topic)
                    .on_conflict_do_nothing()
                    .returning(_PROCESSED.c.event_id)
                )
                if first_time is None:
                    self.skipped_total += 1
                    return False
                if handler is not None:
                    await handler(session, event)
            callbacks: list[AfterCommit] = session.info.pop("after_commit", [])
        await self._run_callbacks(callbacks)
        self.handled_total += 1
        return True

    async def _deliveries(self, stream: str, entry_id: str) -> int:
        pending = await self.redis.xpending_range(stream, self.group, min=entry_id, max=entry_id, count=1)
        return int(pending[0]["times_delivered"]) if pending else 0

    async def _dead_letter(self, stream: str, entry_id: str, fields: Mapping[str, str], reason: str) -> None:
        logger.error("event %s on %s dead-lettered for group %s: %s", entry_id, stream, self.group, reason)
        dead = {**fields, "stream": stream, "entry_id": entry_id, "group": self.group, "reason": reason}
        await self.redis.xadd(stream_name(DEAD_LETTER_TOPIC, self.prefix), dead)  # type: ignore[arg-type]
        await self.redis.xack(stream, self.group, entry_id)
        self.dead_lettered_total += 1

    async def prune(self) -> int:
        """Forget the events this group handled more than `retention_s` ago; return how many."""
        cutoff = datetime.now(UTC) - timedelta(seconds=self.retention_s)
        condition = (_PROCESSED.c.consumer == self.group) & (_PROCESSED.c.processed_at < cutoff)
        return await delete_in_batches(self.sessionmaker, _PROCESSED, condition)

    async def run(self) -> None:
        """Consume forever; survive Redis going away and coming back (groups are re-created if lost)."""
        backoff = 0.0
        while True:
            try:
                await self.poll()
                if (now := time.monotonic()) >= self._next_prune:
                    self._next_prune = now + self.prune_interval_s
                    await self.prune()
                backoff, self.failing_since, self.last_error = 0.0, None, None
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if isinstance(exc, ResponseError) and "NOGROUP" in str(exc):
                    self._groups_ready = False
                    continue
                if not isinstance(exc, ResponseError):
                    self._groups_ready = False
                self.last_error = f"{type(exc).__name__}: {exc}"[:300]
                if self.failing_since is None:
                    self.failing_since = asyncio.get_running_loop().time()
                backoff = min(5.0, max(0.2, backoff * 2))
                logger.warning("event consumer %s: %s; retrying in %.1f s", self.group, exc, backoff)
                await asyncio.sleep(backoff)


def consumer_health_check(consumer: EventConsumer, *, max_failing_s: float = 30.0) -> HealthCheck:
    """A non-critical check: a warning while the consumer has failed to read for longer than `max_failing_s`."""

    async def probe() -> str | None:
        if consumer.failing_since is None:
            return None
        failing_s = asyncio.get_running_loop().time() - consumer.failing_since
        if failing_s < max_failing_s:
            return None
        return f"Events have not been read for {failing_s:.0f} s ({consumer.last_error})."

    return HealthCheck("event_consumer", probe, critical=False)


@contextlib.asynccontextmanager
async def run_event_consumer(
    app: FastAPI, *, group: str, handlers: Mapping[str, Handler], **options: Any
) -> AsyncIterator[EventConsumer]:
    """Run an EventConsumer on the app's database during a lifespan."""
    redis = events_redis(_events_url(app), timeout_s=options.get("block_ms", 1000) / 1000 + 5)
    consumer = EventConsumer(
        redis=redis,
        sessionmaker=app.state.database.sessionmaker,
        group=group,
        handlers=handlers,
        prefix=_stream_prefix(app),
        **options,
    )
    app.state.event_consumer = consumer
    app.state.health_checks.append(consumer_health_check(consumer))
    task = asyncio.create_task(consumer.run(), name=f"event-consumer-{group}")
    try:
        yield consumer
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await redis.aclose()
