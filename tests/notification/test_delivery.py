"""Delivery for real: events through Redis Streams, e-mail to an aiosmtpd server, webhooks to an HTTP server,
WebSocket pushes through Redis pub/sub to a uvicorn-served app."""

import asyncio
import hashlib
import hmac
import json
import time
import uuid
from datetime import UTC, datetime

import pytest
import websockets
from sqlalchemy import select

from microservices.common.events import Event, events_redis
from microservices.notification.models import EmailMessage, WebhookDelivery
from tests.harness import app_client
from tests.notification.conftest import StubDirectory, build_app, make_settings, serve_app, unique_user_id


async def eventually(predicate, *, timeout_s=5.0, interval_s=0.05):
    deadline = time.monotonic() + timeout_s
    while True:
        value = await predicate()
        if value:
            return value
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(interval_s)


def job_event(user_id, new_status="completed", job_id=None):
    return Event(
        id=str(uuid.uuid4()),
        topic="job.status.updated",
        occurred_at=datetime.now(UTC),
        producer="job_processor",
        payload={
            "job_id": job_id or uuid.uuid4().hex[:8],
            "user_id": user_id,
            "job_name": "chr20 run",
            "service_id": 4,
            "old_status": "running",
            "new_status": new_status,
            "message": None,
            "occurred_at": datetime.now(UTC).isoformat(),
        },
    )


@pytest.fixture
async def redis(infra):
    client = events_redis(f"{infra.redis_url.rstrip('/')}/3")
    yield client
    await client.aclose()


async def publish(redis, settings, event):
    await redis.xadd(f"{settings.events_stream_prefix}{event.topic}", event.to_fields())


async def cleanup(redis, settings):
    keys = [k async for k in redis.scan_iter(match=f"{settings.events_stream_prefix}*")]
    if keys:
        await redis.delete(*keys)


async def test_job_completed_event_becomes_an_email_with_subject_recipient_and_link(
    databases, tokens, redis, smtp_server
):
    settings = make_settings(
        consume_events=True, smtp_host="127.0.0.1", smtp_port=smtp_server.port, smtp_from="imputation@example.org"
    )
    app = build_app(settings)
    user_id = unique_user_id()
    address = f"user{user_id}@example.org"
    async with app_client(app, tokens=tokens, rollback=False) as client:
        app.state.delivery.directory = StubDirectory({user_id: address})
        event = job_event(user_id, job_id="job-42")
        await publish(redis, settings, event)
        messages = await eventually(lambda: asyncio.sleep(0, smtp_server.to(address)), timeout_s=10)
        health = (await client.get("/health")).json()
    await cleanup(redis, settings)
    assert len(messages) == 1
    mail = messages[0]
    assert mail["Subject"] == "Job 'chr20 run' completed"
    assert mail["To"] == address
    assert mail["From"] == "imputation@example.org"
    text = mail.get_body(preferencelist=("plain",)).get_content()
    html = mail.get_body(preferencelist=("html",)).get_content()
    assert "Open it here: http://localhost:3000/jobs/job-42" in text
    assert 'href="http://localhost:3000/jobs/job-42"' in html
    assert health["checks"]["smtp"]["status"] == "healthy"
    async with app.state.database.sessionmaker() as session:
        row = (await session.scalars(select(EmailMessage).where(EmailMessage.user_id == user_id))).one()
    assert (row.status, row.attempts, row.recipients, row.last_error) == ("sent", 1, [address], None)
    assert row.sent_at is not None


async def test_an_unreachable_smtp_server_is_retried_then_the_message_fails(databases, tokens, redis):
    from microservices.common.localinfra import free_port

    settings = make_settings(consume_events=True, smtp_host="127.0.0.1", smtp_port=free_port(), email_max_attempts=3)
    app = build_app(settings)
    user_id = unique_user_id()
    async with app_client(app, tokens=tokens, rollback=False):
        app.state.delivery.directory = StubDirectory({user_id: "x@example.org"})
        await publish(redis, settings, job_event(user_id))

        async def final():
            async with app.state.database.sessionmaker() as session:
                row = await session.scalar(select(EmailMessage).where(EmailMessage.user_id == user_id))
            return row if row is not None and row.status != "pending" else None

        row = await eventually(final, timeout_s=10)
    await cleanup(redis, settings)
    assert (row.status, row.attempts) == ("failed", 3)
    assert row.last_error.startswith("ConnectionRefusedError")
    assert row.sent_at is None


async def test_webhook_is_signed_and_retried_after_a_500(databases, tokens, redis, webhook_receiver):
    settings = make_settings(consume_events=True)
    app = build_app(settings)
    user_id = unique_user_id()
    webhook_receiver.statuses = [500]
    headers = tokens.headers(sub=str(user_id), roles=("researcher",))
    async with app_client(app, tokens=tokens, rollback=False) as client:
        app.state.delivery.directory = StubDirectory()
        created = (
            await client.post("/notifications/webhooks", headers=headers, json={"url": webhook_receiver.url})
        ).json()
        event = job_event(user_id, "failed", job_id="job-7")
        await publish(redis, settings, event)
        await eventually(lambda: asyncio.sleep(0, len(webhook_receiver.requests) >= 2), timeout_s=10)

        async def logged():
            body = (await client.get(f"/notifications/webhooks/{created['id']}/deliveries", headers=headers)).json()
            return body if body["items"] and body["items"][0]["status"] == "succeeded" else None

        deliveries = await eventually(logged)
    await cleanup(redis, settings)
    first, second = webhook_receiver.requests[:2]
    assert first["body"] == second["body"]
    request = second
    timestamp = request["headers"]["X-Webhook-Timestamp"]
    expected = hmac.new(created["secret"].encode(), f"{timestamp}.".encode() + request["body"], hashlib.sha256)
    assert request["headers"]["X-Webhook-Signature"] == f"sha256={expected.hexdigest()}"
    assert abs(int(timestamp) - time.time()) < 30
    assert request["headers"]["X-Webhook-Event"] == "job_failed"
    payload = json.loads(request["body"])
    assert payload["type"] == "job_failed"
    assert payload["title"] == "Job 'chr20 run' failed"
    assert payload["link"] == "/jobs/job-7"
    assert payload["event_id"] == event.id
    assert payload["webhook_id"] == created["id"]
    item = deliveries["items"][0]
    assert (item["status"], item["attempts"], item["response_status"], item["last_error"]) == (
        "succeeded",
        2,
        200,
        None,
    )
    async with app.state.database.sessionmaker() as session:
        assert (
            len(
                (
                    await session.scalars(select(WebhookDelivery).where(WebhookDelivery.webhook_id == created["id"]))
                ).all()
            )
            == 1
        )


async def test_a_webhook_whose_host_resolves_to_a_private_address_is_never_called(
    databases, tokens, redis, webhook_receiver
):
    from microservices.notification import service
    from microservices.notification.schemas import WebhookCreate

    settings = make_settings(consume_events=True, webhook_allow_private_urls=False)
    app = build_app(settings)
    user_id = unique_user_id()
    async with app_client(app, tokens=tokens, rollback=False):
        app.state.delivery.directory = StubDirectory()
        # Registered when it passed the check (or before the setting changed): the call itself must still refuse.
        async with app.state.database.sessionmaker() as session, session.begin():
            webhook, _ = await service.create_webhook(
                session=session,
                fernet=service.make_fernet(settings),
                user_id=user_id,
                webhook_in=WebhookCreate(url=webhook_receiver.url),
                allow_private=True,
            )
        await publish(redis, settings, job_event(user_id, "failed", job_id="job-ssrf"))

        async def attempted():
            async with app.state.database.sessionmaker() as session:
                rows = (
                    await session.scalars(select(WebhookDelivery).where(WebhookDelivery.webhook_id == webhook.id))
                ).all()
            return rows[0] if rows and rows[0].attempts >= 1 else None

        delivery = await eventually(attempted)
    await cleanup(redis, settings)
    assert webhook_receiver.requests == []
    assert delivery.status == "pending"
    assert delivery.response_status is None
    assert "resolves to the private address 127.0.0.1" in delivery.last_error


async def test_the_webhook_transport_refuses_private_hosts_and_lets_public_ones_through():
    import httpx

    from microservices.notification.webhook_http import public_only_transport

    async with httpx.AsyncClient(transport=public_only_transport(), timeout=2) as http:
        for url in ("http://localhost:9/", "http://10.1.2.3/", "http://[::1]:9/", "http://169.254.169.254/latest/"):
            with pytest.raises(httpx.ConnectError, match="resolves to the private address"):
                await http.get(url)
        # A public address passes the check: whatever answers there (or fails to), the call is attempted.
        try:
            await http.get("http://203.0.114.1:9/")
        except httpx.HTTPError as exc:
            assert "private address" not in str(exc)


async def test_websocket_gets_the_notification_within_a_second_of_the_event(databases, tokens, redis):
    settings = make_settings(consume_events=True)
    app = build_app(settings)
    user_id = unique_user_id()
    async with serve_app(app) as address:
        app.state.token_verifier.set_jwks(tokens.jwks)
        token = tokens.token(sub=str(user_id), roles=("researcher",))
        async with websockets.connect(f"ws://{address}/ws/notifications?token={token}") as socket:
            assert json.loads(await socket.recv()) == {"type": "connected", "user_id": user_id}
            await app.state.push_hub.subscribed.wait()
            started = time.perf_counter()
            await publish(redis, settings, job_event(user_id, job_id="job-ws"))
            message = json.loads(await asyncio.wait_for(socket.recv(), timeout=1.0))
            delay = time.perf_counter() - started
    await cleanup(redis, settings)
    assert delay < 1.0
    assert message["type"] == "notification"
    assert message["notification"]["user_id"] == user_id
    assert message["notification"]["title"] == "Job 'chr20 run' completed"
    assert message["notification"]["link"] == "/jobs/job-ws"


async def test_websocket_is_told_to_resync_after_the_subscription_was_lost(databases, tokens, redis):
    settings = make_settings(consume_events=True)
    app = build_app(settings)
    user_id = unique_user_id()
    async with serve_app(app) as address:
        app.state.token_verifier.set_jwks(tokens.jwks)
        token = tokens.token(sub=str(user_id), roles=("researcher",))
        async with websockets.connect(f"ws://{address}/ws/notifications?token={token}") as socket:
            assert json.loads(await socket.recv()) == {"type": "connected", "user_id": user_id}
            hub = app.state.push_hub
            await hub.subscribed.wait()
            # What a Redis restart does to the subscription (pub/sub keeps nothing of what it missed meanwhile).
            await redis.client_kill_filter(_type="pubsub")
            assert json.loads(await asyncio.wait_for(socket.recv(), timeout=5)) == {"type": "resync"}
            assert hub.subscribed.is_set()
            await publish(redis, settings, job_event(user_id, job_id="job-after-resync"))
            message = json.loads(await asyncio.wait_for(socket.recv(), timeout=5))
    await cleanup(redis, settings)
    assert message["notification"]["link"] == "/jobs/job-after-resync"


async def test_websocket_accepts_the_token_as_first_message_and_sends_heartbeats(databases, tokens):
    app = build_app(make_settings(websocket_heartbeat_s=0.2))
    async with serve_app(app) as address:
        app.state.token_verifier.set_jwks(tokens.jwks)
        async with websockets.connect(f"ws://{address}/ws/notifications") as socket:
            await socket.send(json.dumps({"token": tokens.token(sub="55")}))
            assert json.loads(await socket.recv()) == {"type": "connected", "user_id": 55}
            assert json.loads(await asyncio.wait_for(socket.recv(), timeout=2)) == {"type": "ping"}
            await socket.send("ping")
            assert json.loads(await asyncio.wait_for(socket.recv(), timeout=2)) in ({"type": "pong"}, {"type": "ping"})


@pytest.mark.parametrize("token", ["not-a-token", "expired", None])
async def test_websocket_with_a_bad_token_is_closed_with_4401(databases, tokens, token):
    app = build_app(make_settings(websocket_auth_timeout_s=0.5))
    async with serve_app(app) as address:
        app.state.token_verifier.set_jwks(tokens.jwks)
        url = f"ws://{address}/ws/notifications"
        if token == "expired":
            token = tokens.token(sub="5", expires_in_s=-60)
        if token is not None:
            url += f"?token={token}"
        async with websockets.connect(url) as socket:
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await asyncio.wait_for(socket.recv(), timeout=3)
    assert closed.value.rcvd.code == 4401


async def test_prune_forgets_old_bookkeeping_but_not_pending_mail(databases, tokens):
    from datetime import timedelta

    from microservices.notification.delivery import prune

    app = build_app(make_settings(retention_days=30, consume_events=True))
    user_id = unique_user_id()
    old = datetime.now(UTC) - timedelta(days=31)
    async with app_client(app, tokens=tokens, rollback=False):
        # The event consumer forgets its processed ids after the same retention.
        assert app.state.event_consumer.retention_s == 30 * 86400
        async with app.state.database.sessionmaker() as session, session.begin():
            for status in ("sent", "pending"):
                session.add(
                    EmailMessage(
                        user_id=user_id,
                        notification_type="job_completed",
                        subject=status,
                        body_text="",
                        body_html="",
                        status=status,
                        created_at=old,
                    )
                )
        deleted = await prune(sessionmaker=app.state.database.sessionmaker, settings=app.state.settings)
        async with app.state.database.sessionmaker() as session:
            left = (await session.scalars(select(EmailMessage.subject).where(EmailMessage.user_id == user_id))).all()
    # The service's own hourly pass may have got there first; what is left is what counts.
    assert set(deleted) == {"email_message", "webhook_delivery"}
    assert left == ["pending"]
