"""The event bus: outbox written in the producer's transaction, relay to Redis Streams, idempotent consumers."""

import asyncio
import os
import re
import uuid
from datetime import datetime

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from sqlalchemy import MetaData, create_engine, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine
from sqlalchemy.orm import Session

from microservices.common.events import (
    Event,
    EventConsumer,
    OutboxRelay,
    after_commit,
    consumer_health_check,
    emit,
    emit_sync,
    events_redis,
    outbox_table,
    processed_event_table,
)
from microservices.common.localinfra import free_port
from microservices.common.migrate import create_databases, drop_databases
from tests.harness import wait_until

JOB_PAYLOAD = {
    "job_id": "5b0a4c1e-8a52-4a8c-9a39-2f7d1d7a9e10",
    "user_id": 7,
    "job_name": "chr20 imputation",
    "service_id": 3,
    "old_status": "running",
    "new_status": "completed",
    "message": "Job completed",
    "occurred_at": datetime(2026, 11, 22, 3, 0, 0),
}

metadata = MetaData()
outbox = outbox_table(metadata)
processed = processed_event_table(metadata)


@pytest.fixture(scope="module")
def database_url(infra):
    name = f"tev{os.getpid()}"
    drop_databases(infra.database_url, [name])
    create_databases(infra.database_url, [name])
    url = make_url(infra.database_url).set(database=name)
    engine = create_engine(url.set(drivername="postgresql+psycopg2"))
    metadata.create_all(engine)
    engine.dispose()
    yield url
    drop_databases(infra.database_url, [name])


@pytest.fixture
async def engine(database_url):
    engine = create_async_engine(database_url.set(drivername="postgresql+asyncpg"))
    async with engine.begin() as connection:
        await connection.execute(text("TRUNCATE outbox_event, processed_event"))
    yield engine
    await engine.dispose()


@pytest.fixture
def sessionmaker(engine):
    return async_sessionmaker(engine, expire_on_commit=False)


@pytest.fixture
async def redis(infra):
    client = events_redis(f"{infra.redis_url.rstrip('/')}/3")
    yield client
    await client.aclose()


@pytest.fixture
def prefix(redis):
    # Streams of this test only: other test sessions share the Redis server.
    return f"t{os.getpid()}-{uuid.uuid4().hex[:8]}:events:"


@pytest.fixture
async def cleanup_streams(redis, prefix):
    yield
    keys = [k async for k in redis.scan_iter(match=f"{prefix}*")]
    if keys:
        await redis.delete(*keys)


async def test_emit_is_part_of_the_callers_transaction(sessionmaker, engine):
    async with sessionmaker() as session:
        await emit(session, topic="job.status.updated", payload=JOB_PAYLOAD, producer="job_processor")
        await session.rollback()
    async with sessionmaker.begin() as session:
        event_id = await emit(session, topic="job.status.updated", payload=JOB_PAYLOAD, producer="job_processor")
    async with sessionmaker() as session:
        rows = (await session.execute(select(outbox))).all()
    assert len(rows) == 1
    row = rows[0]
    assert str(row.id) == event_id
    assert row.topic == "job.status.updated"
    assert row.producer == "job_processor"
    assert row.payload == {**JOB_PAYLOAD, "occurred_at": "2026-11-22T03:00:00"}
    assert row.published_at is None
    assert row.attempts == 0


async def test_emit_refuses_a_malformed_topic(sessionmaker):
    async with sessionmaker() as session:
        with pytest.raises(ValueError, match="not a topic name"):
            await emit(session, topic="Job Status", payload={}, producer="x")


async def test_emit_sync_writes_the_same_row(database_url, sessionmaker, engine):
    sync_engine = create_engine(database_url.set(drivername="postgresql+psycopg2"))
    with Session(sync_engine) as session, session.begin():
        event_id = emit_sync(session, topic="file.upload.completed", payload={"file_id": 1}, producer="file_manager")
    sync_engine.dispose()
    async with sessionmaker() as session:
        row = (await session.execute(select(outbox))).one()
    assert (str(row.id), row.topic, row.payload, row.producer) == (
        event_id,
        "file.upload.completed",
        {"file_id": 1},
        "file_manager",
    )


async def test_relay_publishes_the_envelope_and_marks_rows_published(
    sessionmaker, engine, redis, prefix, cleanup_streams
):
    async with sessionmaker.begin() as session:
        event_id = await emit(session, topic="job.status.updated", payload=JOB_PAYLOAD, producer="job_processor")
    relay = OutboxRelay(engine=engine, redis=redis, prefix=prefix)
    assert await relay.drain() == 1
    assert await relay.drain() == 0
    entries = await redis.xrange(f"{prefix}job.status.updated")
    assert len(entries) == 1
    fields = entries[0][1]
    assert fields["id"] == event_id
    assert fields["topic"] == "job.status.updated"
    assert fields["producer"] == "job_processor"
    assert fields["version"] == "1"
    event = Event.from_fields(fields)
    assert event.payload == {**JOB_PAYLOAD, "occurred_at": "2026-11-22T03:00:00"}
    async with sessionmaker() as session:
        row = (await session.execute(select(outbox))).one()
    assert row.published_at is not None
    assert row.attempts == 1
    assert await relay.backlog() == (0, 0.0)


async def test_relay_keeps_rows_while_redis_is_away_and_publishes_them_later(
    sessionmaker, engine, redis, prefix, cleanup_streams
):
    async with sessionmaker.begin() as session:
        for n in range(3):
            await emit(session, topic="file.upload.completed", payload={"file_id": n}, producer="file_manager")
    away = events_redis(f"redis://127.0.0.1:{free_port()}/3", timeout_s=0.5)
    relay = OutboxRelay(engine=engine, redis=away, prefix=prefix)
    with pytest.raises(RedisConnectionError):
        await relay.drain()
    await away.aclose()
    async with sessionmaker() as session:
        rows = (await session.execute(select(outbox))).all()
    assert [(r.published_at, r.attempts) for r in rows] == [(None, 1)] * 3
    assert all("Connect" in r.last_error or "connect" in r.last_error for r in rows)
    assert (await relay.backlog())[0] == 3

    relay.redis = redis
    assert await relay.drain() == 3
    payloads = [Event.from_fields(f).payload for _, f in await redis.xrange(f"{prefix}file.upload.completed")]
    assert payloads == [{"file_id": 0}, {"file_id": 1}, {"file_id": 2}]


async def test_relay_is_woken_by_the_commit_not_by_its_poll(sessionmaker, engine, redis, prefix, cleanup_streams):
    relay = OutboxRelay(engine=engine, redis=redis, prefix=prefix, poll_interval_s=30)
    task = asyncio.create_task(relay.run())
    try:
        loop = asyncio.get_running_loop()
        started = loop.time()
        while relay._listener is None:  # the relay is listening and idle
            assert loop.time() - started < 10, "the relay never listened"
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.1)
        async with sessionmaker.begin() as session:
            await emit(session, topic="service.changed", payload={"service_id": 1}, producer="service_registry")
        started = loop.time()
        while not await redis.xlen(f"{prefix}service.changed"):
            assert loop.time() - started < 2, "not published within 2 s of the commit"
            await asyncio.sleep(0.01)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await relay.close()


async def test_two_relays_publish_each_event_exactly_once(sessionmaker, engine, redis, prefix, cleanup_streams):
    async with sessionmaker.begin() as session:
        for n in range(400):
            await emit(session, topic="user.action.logged", payload={"user_id": n, "action": "login"}, producer="u")
    relays = [OutboxRelay(engine=engine, redis=redis, prefix=prefix, batch_size=25) for _ in range(2)]
    counts = await asyncio.gather(*(r.drain() for r in relays))
    assert sum(counts) == 400
    entries = await redis.xrange(f"{prefix}user.action.logged")
    assert len({f["id"] for _, f in entries}) == 400
    assert len(entries) == 400


def consumer_for(redis, sessionmaker, prefix, handlers, **options):
    return EventConsumer(
        redis=redis, sessionmaker=sessionmaker, group="tests", handlers=handlers, prefix=prefix, block_ms=50, **options
    )


def make_event(topic="job.status.updated", payload=None):
    return Event(
        id=str(uuid.uuid4()),
        topic=topic,
        occurred_at=datetime.fromisoformat("2026-11-22T03:00:00+00:00"),
        producer="tests",
        payload=payload or {"job_id": "j1"},
    )


async def test_consumer_handles_each_event_once_and_acknowledges(sessionmaker, redis, prefix, cleanup_streams):
    seen = []

    async def handler(session, event):
        seen.append(event.payload["job_id"])

    consumer = consumer_for(redis, sessionmaker, prefix, {"job.status.updated": handler})
    await consumer.ensure_groups()
    event = make_event()
    stream = f"{prefix}job.status.updated"
    await redis.xadd(stream, event.to_fields())
    await redis.xadd(stream, event.to_fields())  # published twice (relay retried after a lost commit)
    assert await consumer.poll() == 2
    assert seen == ["j1"]
    assert (consumer.handled_total, consumer.skipped_total) == (1, 1)
    assert (await redis.xpending(stream, "tests"))["pending"] == 0
    async with sessionmaker() as session:
        row = (await session.execute(select(processed))).one()
    assert (row.consumer, str(row.event_id), row.topic) == ("tests", event.id, "job.status.updated")


async def test_consumer_group_starts_at_the_beginning_of_the_stream(sessionmaker, redis, prefix, cleanup_streams):
    seen = []

    async def handler(session, event):
        seen.append(event.id)

    event = make_event()
    await redis.xadd(f"{prefix}job.status.updated", event.to_fields())
    consumer = consumer_for(redis, sessionmaker, prefix, {"job.status.updated": handler})
    await consumer.poll()
    assert seen == [event.id]


async def test_a_stale_unacknowledged_entry_is_taken_over_by_another_consumer(
    sessionmaker, redis, prefix, cleanup_streams
):
    seen = []

    async def handler(session, event):
        seen.append(event.id)

    stream = f"{prefix}job.status.updated"
    crashed = consumer_for(redis, sessionmaker, prefix, {"job.status.updated": handler}, consumer_name="crashed")
    await crashed.ensure_groups()
    event = make_event()
    await redis.xadd(stream, event.to_fields())
    # The crashed consumer read the entry and died before handling it.
    await redis.xreadgroup("tests", "crashed", {stream: ">"}, count=10)
    survivor = consumer_for(
        redis, sessionmaker, prefix, {"job.status.updated": handler}, consumer_name="survivor", claim_idle_ms=100
    )
    assert await survivor.poll() == 0
    await asyncio.sleep(0.15)
    survivor._last_claim = 0.0
    assert await survivor.poll() == 1
    assert seen == [event.id]
    assert (await redis.xpending(stream, "tests"))["pending"] == 0


async def test_a_failing_event_is_retried_then_dead_lettered(sessionmaker, redis, prefix, cleanup_streams):
    attempts = []

    async def handler(session, event):
        attempts.append(event.id)
        raise RuntimeError("mail server on fire")

    stream = f"{prefix}job.status.updated"
    consumer = consumer_for(
        redis, sessionmaker, prefix, {"job.status.updated": handler}, claim_idle_ms=20, max_deliveries=3
    )
    event = make_event()
    await consumer.ensure_groups()
    await redis.xadd(stream, event.to_fields())

    async def dead_lettered():
        consumer._last_claim = 0.0
        await consumer.poll()
        return await redis.xlen(f"{prefix}dead")

    deadline = asyncio.get_running_loop().time() + 5
    while not await dead_lettered():
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.03)
    assert attempts == [event.id] * 3
    ((_, dead),) = await redis.xrange(f"{prefix}dead")
    assert dead["id"] == event.id
    assert dead["stream"] == stream
    assert dead["group"] == "tests"
    assert dead["reason"] == "RuntimeError: mail server on fire"
    assert (await redis.xpending(stream, "tests"))["pending"] == 0
    # The failed attempts were rolled back, so the event is not remembered as processed.
    async with sessionmaker() as session:
        assert (await session.execute(select(processed))).all() == []


async def test_a_malformed_entry_is_dead_lettered_at_once(sessionmaker, redis, prefix, cleanup_streams):
    consumer = consumer_for(redis, sessionmaker, prefix, {"job.status.updated": lambda s, e: asyncio.sleep(0)})
    await consumer.ensure_groups()
    await redis.xadd(f"{prefix}job.status.updated", {"id": "not-a-uuid", "payload": "{}"})
    await consumer.poll()
    ((_, dead),) = await redis.xrange(f"{prefix}dead")
    assert dead["reason"].startswith("malformed envelope")


async def test_after_commit_work_runs_only_after_a_commit(sessionmaker, redis, prefix, cleanup_streams):
    pushed = []

    async def handler(session, event):
        async def push():
            pushed.append(event.payload["job_id"])

        after_commit(session, push)
        if event.payload["job_id"] == "bad":
            raise RuntimeError("rolled back")

    consumer = consumer_for(redis, sessionmaker, prefix, {"job.status.updated": handler})
    await consumer.ensure_groups()
    await redis.xadd(f"{prefix}job.status.updated", make_event(payload={"job_id": "bad"}).to_fields())
    await redis.xadd(f"{prefix}job.status.updated", make_event(payload={"job_id": "good"}).to_fields())
    await consumer.poll()
    assert pushed == ["good"]


async def test_consumer_survives_redis_being_away(sessionmaker, redis, prefix, cleanup_streams):
    away = events_redis(f"redis://127.0.0.1:{free_port()}/3", timeout_s=0.3)
    consumer = consumer_for(away, sessionmaker, prefix, {"job.status.updated": lambda s, e: asyncio.sleep(0)})
    task = asyncio.create_task(consumer.run())
    await asyncio.sleep(0.5)
    assert not task.done()
    event = make_event()
    await redis.xadd(f"{prefix}job.status.updated", event.to_fields())
    await asyncio.sleep(0.3)
    # Refused, or timed out on a machine too busy to be refused within 0.3 s.
    assert consumer.last_error.startswith(("ConnectionError", "TimeoutError")), consumer.last_error
    check = consumer_health_check(consumer, max_failing_s=0.1)
    warning = await check.probe()
    assert re.fullmatch(r"Events have not been read for \d+ s \((Connection|Timeout)Error: .*\)\.", warning, re.S), (
        warning
    )
    consumer.redis = redis
    deadline = asyncio.get_running_loop().time() + 20
    while consumer.handled_total < 1:
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.05)
    assert await check.probe() is None
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await away.aclose()


def test_wait_until_is_available():
    assert wait_until(lambda: 1, timeout_s=1) == 1


async def test_one_failing_event_in_a_batch_holds_back_only_itself(sessionmaker, redis, prefix, cleanup_streams):
    handled = []

    async def handler(session, event):
        if event.payload["job_id"] == "bad":
            raise RuntimeError("cannot")
        await session.execute(text("SELECT 1"))

        async def done():
            handled.append(event.payload["job_id"])

        # Effects outside the transaction go through after_commit: a rolled-back batch leaves none behind.
        after_commit(session, done)

    stream = f"{prefix}job.status.updated"
    consumer = consumer_for(redis, sessionmaker, prefix, {"job.status.updated": handler})
    await consumer.ensure_groups()
    for job_id in ("a", "bad", "b"):
        await redis.xadd(stream, make_event(payload={"job_id": job_id}).to_fields())
    assert await consumer.poll() == 3
    assert handled == ["a", "b"]
    assert (consumer.handled_total, consumer.skipped_total) == (2, 0)
    pending = await redis.xpending_range(stream, "tests", min="-", max="+", count=10)
    assert len(pending) == 1
    async with sessionmaker() as session:
        assert len((await session.execute(select(processed))).all()) == 2


async def test_the_relay_prunes_rows_published_before_the_retention_only(
    sessionmaker, engine, redis, prefix, cleanup_streams
):
    async with sessionmaker.begin() as session:
        for _ in range(7):
            await emit(session, topic="job.status.updated", payload=JOB_PAYLOAD, producer="job_processor")
    relay = OutboxRelay(engine=engine, redis=redis, prefix=prefix, retention_s=3600)
    assert await relay.drain() == 7
    async with sessionmaker.begin() as session:
        # Five published two hours ago, one unpublished as old (never pruned), two published just now.
        await session.execute(
            text(
                "UPDATE outbox_event SET published_at = now() - interval '2 hours' "
                "WHERE id IN (SELECT id FROM outbox_event ORDER BY id LIMIT 5)"
            )
        )
        await emit(session, topic="job.status.updated", payload=JOB_PAYLOAD, producer="job_processor")
        await session.execute(text("UPDATE outbox_event SET occurred_at = now() - interval '3 hours'"))
    assert await relay.prune() == 5
    assert await relay.prune() == 0
    async with sessionmaker() as session:
        left = (await session.execute(select(outbox.c.published_at.is_(None)))).scalars().all()
    assert sorted(left) == [False, False, True]


async def test_batched_deletes_take_every_matching_row(sessionmaker, engine):
    from microservices.common.events import delete_in_batches

    async with sessionmaker.begin() as session:
        for _ in range(12):
            await emit(session, topic="job.status.updated", payload=JOB_PAYLOAD, producer="job_processor")
    assert await delete_in_batches(sessionmaker, outbox, outbox.c.published_at.is_(None), batch_size=5) == 12
    async with sessionmaker() as session:
        assert (await session.execute(select(outbox))).all() == []


async def test_a_consumer_forgets_only_its_own_old_handled_events(sessionmaker, redis, prefix, cleanup_streams):
    async def handler(session, event):
        return None

    consumer = consumer_for(redis, sessionmaker, prefix, {"job.status.updated": handler})
    consumer.retention_s = 86400
    async with sessionmaker.begin() as session:
        await session.execute(
            text(
                "INSERT INTO processed_event (consumer, event_id, topic, processed_at) VALUES "
                "('tests', gen_random_uuid(), 't.old', now() - interval '2 days'), "
                "('tests', gen_random_uuid(), 't.old', now() - interval '3 days'), "
                "('tests', gen_random_uuid(), 't.new', now() - interval '1 hour'), "
                "('others', gen_random_uuid(), 't.old', now() - interval '9 days')"
            )
        )
    assert await consumer.prune() == 2
    async with sessionmaker() as session:
        rows = (await session.execute(select(processed.c.consumer, processed.c.topic))).all()
    assert sorted(rows) == [("others", "t.old"), ("tests", "t.new")]


async def test_emit_many_writes_every_event_of_the_transaction_or_none(sessionmaker, engine):
    from microservices.common.events import emit_many

    events = [("service.health.changed", {"service_id": n, "new_status": "healthy"}) for n in range(3)]
    async with sessionmaker() as session:
        await emit_many(session, events, producer="service_registry")
        await session.rollback()
    async with sessionmaker.begin() as session:
        assert await emit_many(session, [], producer="service_registry") == []
        ids = await emit_many(session, events, producer="service_registry")
    async with sessionmaker() as session:
        rows = (await session.execute(select(outbox).order_by(outbox.c.payload["service_id"].as_integer()))).all()
    assert [str(row.id) for row in rows] == ids
    assert [row.payload for row in rows] == [payload for _, payload in events]
    assert {(row.topic, row.producer) for row in rows} == {("service.health.changed", "service_registry")}
    with pytest.raises(ValueError):
        async with sessionmaker() as session:
            await emit_many(session, [("Not A Topic", {})], producer="service_registry")
