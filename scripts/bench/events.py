"""Event bus benchmark: throughput through outbox, relay and consumer; push delay to 1,000 WebSocket clients.

    .venv/bin/python scripts/bench/events.py [--events 5000] [--clients 1000] [--pushes 300] [--rate 10]

Uses the PostgreSQL of DATABASE_URL (databases of its own, dropped at the end) and the Redis of REDIS_URL
(stream and channel names of its own, deleted at the end).

1. Throughput: `--events` events emitted into an outbox (100 per transaction from one producer, and one per
   transaction from 20 concurrent producers), published by an OutboxRelay and handled by an EventConsumer (its
   processed-event bookkeeping included), all in this process; events per second from the first commit to the
   last handled event; and, with the outbox filled first, the rate at which relay and consumer alone drain it.
2. Push delay: a notification service started as a real process (uvicorn), `--clients` WebSocket clients
   connected, each as its own user; `--pushes` job-completed events, `--rate` a second, each committed to a
   producer's outbox for a random connected user; the delay from that commit to the push arriving at the
   client (relay, stream, consumer, notification row, Redis pub/sub, WebSocket), median and 99th percentile.
   Goal (issue 6): under 100 ms at the median and under 500 ms at the 99th percentile.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import websockets
from alembic import command
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from sqlalchemy import MetaData, create_engine
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from microservices.common.events import (  # noqa: E402
    Event,
    EventConsumer,
    OutboxRelay,
    emit,
    events_redis,
    outbox_table,
    processed_event_table,
)
from microservices.common.localinfra import free_port, wait_for_port  # noqa: E402
from microservices.common.migrate import alembic_config, create_databases, drop_databases  # noqa: E402
from tests.harness import TokenFactory  # noqa: E402


def fast_tokens(tokens: TokenFactory, user_ids: list[int]) -> dict[int, str]:
    """Access tokens for many users, signed with the factory's key loaded once (python-jose reloads it each time)."""
    key = serialization.load_pem_private_key(tokens.private_pem.encode(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    header = b64(json.dumps({"alg": "RS256", "typ": "JWT", "kid": tokens.kid}).encode())
    now = int(time.time())
    signed = {}
    for user_id in user_ids:
        claims = {
            "sub": str(user_id),
            "username": f"bench{user_id}",
            "roles": ["researcher"],
            "iat": now,
            "exp": now + 3600,
            "iss": tokens.issuer,
            "aud": tokens.audience,
            "jti": uuid.uuid4().hex,
        }
        body = f"{header}.{b64(json.dumps(claims).encode())}"
        signature = key.sign(body.encode(), padding.PKCS1v15(), hashes.SHA256())
        signed[user_id] = f"{body}.{b64(signature)}"
    return signed


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def make_database(server: str, name: str) -> URL:
    drop_databases(server, [name])
    create_databases(server, [name])
    return make_url(server).set(database=name)


async def throughput(
    url: URL, redis_url: str, *, events: int, per_transaction: int, producers: int, backlog: bool = False
) -> float:
    """Events per second from the first commit to the last event handled by the consumer."""
    engine: AsyncEngine = create_async_engine(url.set(drivername="postgresql+asyncpg"), pool_size=10)
    sessionmaker = async_sessionmaker(engine, expire_on_commit=False)
    prefix = f"bench-{uuid.uuid4().hex[:8]}:events:"
    redis = events_redis(redis_url)
    done = asyncio.Event()
    handled = 0

    async def handler(session: Any, event: Event) -> None:
        nonlocal handled
        handled += 1
        if handled == events:
            done.set()

    relay = OutboxRelay(engine=engine, redis=redis, prefix=prefix, batch_size=500)
    consumer = EventConsumer(
        redis=redis, sessionmaker=sessionmaker, group="bench", handlers={"job.status.updated": handler}, prefix=prefix
    )
    await consumer.ensure_groups()
    tasks: list[asyncio.Task[None]] = []
    if not backlog:
        tasks = [asyncio.create_task(relay.run()), asyncio.create_task(consumer.run())]
    started = time.perf_counter()
    batches = [range(first, min(events, first + per_transaction)) for first in range(0, events, per_transaction)]

    async def produce(mine: list[range]) -> None:
        for batch in mine:
            async with sessionmaker.begin() as session:
                for n in batch:
                    await emit(
                        session,
                        topic="job.status.updated",
                        payload={"job_id": f"j{n}", "user_id": n, "new_status": "completed"},
                        producer="bench",
                    )

    await asyncio.gather(*(produce(batches[i::producers]) for i in range(producers)))
    if backlog:
        # The outbox is full before the relay starts: what the bus alone drains, without producers competing.
        started = time.perf_counter()
        tasks = [asyncio.create_task(relay.run()), asyncio.create_task(consumer.run())]
    await asyncio.wait_for(done.wait(), timeout=600)
    elapsed = time.perf_counter() - started
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await relay.close()
    keys = [k async for k in redis.scan_iter(match=f"{prefix}*")]
    if keys:
        await redis.delete(*keys)
    await redis.aclose()
    await engine.dispose()
    return events / elapsed


async def push_delays(
    producer_url: URL,
    redis_url: str,
    port: int,
    tokens: TokenFactory,
    *,
    clients: int,
    pushes: int,
    rate: float,
    prefix: str,
) -> tuple[list[float], int]:
    """Delays in ms from the outbox commit to the WebSocket push, and how many pushes never arrived."""
    engine = create_async_engine(producer_url.set(drivername="postgresql+asyncpg"))
    sessionmaker = async_sessionmaker(engine, expire_on_commit=False)
    redis = events_redis(redis_url)
    sent: dict[int, float] = {}
    received: dict[int, float] = {}
    all_received = asyncio.Event()
    user_base = 5_000_000

    signed = fast_tokens(tokens, [user_base + n for n in range(clients)])

    # At most 50 handshakes at a time: the measure is the push, not a thundering herd of connects.
    handshakes = asyncio.Semaphore(50)

    async def client(n: int, ready: asyncio.Event, connected: list[int]) -> None:
        token = signed[user_base + n]
        async with handshakes:
            ws = await websockets.connect(
                f"ws://127.0.0.1:{port}/ws/notifications?token={token}", max_queue=None, open_timeout=60
            )
            hello = json.loads(await ws.recv())
        async with ws:
            assert hello["type"] == "connected", hello
            connected.append(n)
            if n == 0 or len(connected) == clients:
                ready.set()
            async for raw in ws:
                message = json.loads(raw)
                if message.get("type") != "notification":
                    continue
                index = int(message["notification"]["data"]["job_id"].split("-")[1])
                received[index] = time.perf_counter()
                if len(received) == pushes:
                    all_received.set()

    ready = asyncio.Event()
    connected: list[int] = []
    # One client first, so that the service has fetched the signing keys before the crowd arrives.
    first_ready = asyncio.Event()
    sockets = [asyncio.create_task(client(0, first_ready, connected))]
    await asyncio.wait_for(first_ready.wait(), timeout=60)
    if clients == 1:
        ready.set()
    sockets += [asyncio.create_task(client(n, ready, connected)) for n in range(1, clients)]
    await asyncio.wait_for(ready.wait(), timeout=300)
    print(f"  {len(connected)} WebSocket clients connected", flush=True)
    relay = OutboxRelay(engine=engine, redis=redis, prefix=f"{prefix}events:")
    relay_task = asyncio.create_task(relay.run())
    await asyncio.sleep(2)
    for index in range(pushes):
        user_id = user_base + random.randrange(clients)
        async with sessionmaker.begin() as session:
            await emit(
                session,
                topic="job.status.updated",
                payload={
                    "job_id": f"bench-{index}",
                    "user_id": user_id,
                    "job_name": f"bench {index}",
                    "service_id": 1,
                    "old_status": "running",
                    "new_status": "completed",
                    "message": None,
                    "occurred_at": datetime.now(UTC).isoformat(),
                },
                producer="bench",
            )
        sent[index] = time.perf_counter()
        await asyncio.sleep(1 / rate)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(all_received.wait(), timeout=30)
    for task in (*sockets, relay_task):
        task.cancel()
    await asyncio.gather(*sockets, relay_task, return_exceptions=True)
    await relay.close()
    keys = [k async for k in redis.scan_iter(match=f"{prefix}*")]
    if keys:
        await redis.delete(*keys)
    await redis.aclose()
    await engine.dispose()
    delays = [(received[i] - sent[i]) * 1000 for i in sent if i in received]
    return delays, len(sent) - len(delays)


def start_notification(
    database_url: URL, redis_url: str, jwks_url: str, port: int, prefix: str, log: Any
) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "ENVIRONMENT": "test",
        "REDIS_URL": redis_url,
        "NOTIFICATION_DATABASE_URL": database_url.render_as_string(hide_password=False),
        "NOTIFICATION_PORT": str(port),
        "NOTIFICATION_EVENTS_STREAM_PREFIX": f"{prefix}events:",
        "NOTIFICATION_PUBSUB_PREFIX": f"{prefix}notifications:",
        "NOTIFICATION_ACCESS_LOG": "false",
        "NOTIFICATION_DATABASE_POOL_SIZE": "10",
        "JWKS_URL": jwks_url,
        "LOG_LEVEL": "WARNING",
        "SMTP_HOST": "",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "microservices.notification"],
        env=env,
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--pushes", type=int, default=300)
    parser.add_argument("--rate", type=float, default=10.0, help="pushes a second")
    args = parser.parse_args()

    server = os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    redis_server = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379").rstrip("/")
    redis_url = f"{redis_server}/3"
    tag = f"bench{os.getpid()}"
    producer_url = make_database(server, f"{tag}_producer")
    notification_url = make_database(server, f"{tag}_notification")
    sync = create_engine(producer_url.set(drivername="postgresql+psycopg2"))
    metadata = MetaData()
    outbox_table(metadata)
    processed_event_table(metadata)
    metadata.create_all(sync)
    sync.dispose()
    command.upgrade(
        alembic_config(
            "notification", notification_url.set(drivername="postgresql+psycopg2").render_as_string(hide_password=False)
        ),
        "head",
    )
    processes: list[subprocess.Popen[bytes]] = []
    try:
        print("Throughput: outbox -> relay -> Redis Stream -> consumer (one process)", flush=True)
        for per_transaction, producers, backlog in ((100, 1, False), (1, 20, False), (100, 1, True)):
            rate = asyncio.run(
                throughput(
                    producer_url,
                    redis_url,
                    events=args.events,
                    per_transaction=per_transaction,
                    producers=producers,
                    backlog=backlog,
                )
            )
            what = (
                "a full outbox drained to the consumer"
                if backlog
                else f"{per_transaction:>3} per transaction, {producers:>2} producers"
            )
            print(f"  {args.events} events, {what}: {rate:,.0f} events/s", flush=True)

        tokens = TokenFactory()
        jwks_port, port = free_port(), free_port()
        processes.append(
            subprocess.Popen(
                [sys.executable, str(ROOT / "scripts" / "bench" / "trivial_upstream.py"), str(jwks_port)],
                env={**os.environ, "BENCH_JWKS": json.dumps(tokens.jwks)},
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
        wait_for_port(jwks_port, timeout_s=30)
        prefix = f"{tag}-{uuid.uuid4().hex[:6]}:"
        jwks_url = f"http://127.0.0.1:{jwks_port}/.well-known/jwks.json"
        log_path = Path(tempfile.gettempdir()) / f"{tag}-notification.log"
        with open(log_path, "wb") as log:
            processes.append(start_notification(notification_url, redis_server, jwks_url, port, prefix, log))
        print(f"  notification service log: {log_path}", flush=True)
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("the notification service did not start")
            time.sleep(0.2)
        print(
            f"Push delay: outbox commit -> WebSocket, {args.clients} clients, {args.pushes} pushes at {args.rate:g}/s",
            flush=True,
        )
        delays, lost = asyncio.run(
            push_delays(
                producer_url,
                redis_url,
                port,
                tokens,
                clients=args.clients,
                pushes=args.pushes,
                rate=args.rate,
                prefix=prefix,
            )
        )
        p50, p99 = statistics.median(delays), percentile(delays, 0.99)
        print(f"  received {len(delays)}/{args.pushes}, lost {lost}")
        print(f"  median {p50:.1f} ms (goal < 100: {'met' if p50 < 100 else 'NOT met'})")
        print(f"  p99    {p99:.1f} ms (goal < 500: {'met' if p99 < 500 else 'NOT met'})")
        print(f"  max    {max(delays):.1f} ms")
        return 0 if p50 < 100 and p99 < 500 and lost == 0 else 1
    finally:
        for process in processes:
            process.terminate()
            process.wait(timeout=15)
        drop_databases(server, [f"{tag}_producer", f"{tag}_notification"])


if __name__ == "__main__":
    sys.exit(main())
