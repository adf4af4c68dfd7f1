"""Events, notifications and monitoring across real processes: nothing lost, nothing doubled, admins told once."""

import asyncio
import json
import signal
import threading
import time
import uuid
from datetime import UTC, datetime

import httpx
import pytest
import redis
import websockets
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session

from microservices.common.events import Event, emit_sync
from tests.harness import wait_until

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def admin_headers(platform):
    response = httpx.post(
        f"{platform.url('user_service')}/auth/login",
        json={"username": "admin", "password": platform.env["BOOTSTRAP_ADMIN_PASSWORD"]},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    return {"Authorization": f"Bearer {body['access_token']}", "X-User-Id": str(body["user"]["id"])}


@pytest.fixture(scope="module")
def notification_db(platform):
    engine = create_engine(platform.databases.url("notification", "postgresql+psycopg2"))
    yield engine
    engine.dispose()


@pytest.fixture(scope="module")
def monitoring_db(platform):
    engine = create_engine(platform.databases.url("monitoring", "postgresql+psycopg2"))
    yield engine
    engine.dispose()


def events_redis(platform):
    return redis.Redis.from_url(f"{platform.redis.url}/3", decode_responses=True, socket_timeout=5)


def job_event(user_id, n, new_status="cancelled"):
    return Event(
        id=str(uuid.uuid4()),
        topic="job.status.updated",
        occurred_at=datetime.now(UTC),
        producer="tests",
        payload={
            "job_id": f"job-{n}",
            "user_id": user_id,
            "job_name": f"run {n}",
            "service_id": 1,
            "old_status": "running",
            "new_status": new_status,
            "message": None,
            "occurred_at": datetime.now(UTC).isoformat(),
        },
    )


def notification_counts(engine, event_ids):
    with engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT event_id::text, count(*) FROM notification"
                " WHERE event_id = ANY(CAST(:ids AS uuid[])) GROUP BY 1"
            ),
            {"ids": list(event_ids)},
        ).all()
    return dict(rows)


def test_killing_the_notification_service_mid_stream_loses_and_duplicates_nothing(platform, notification_db):
    client = events_redis(platform)
    user_id = 900_000 + int(time.time()) % 100_000
    ids = []
    killed = threading.Event()

    def produce():
        for n in range(150):
            event = job_event(user_id, n)
            client.xadd("events:job.status.updated", event.to_fields())
            ids.append(event.id)
            if n == 50:
                killed.wait(timeout=30)
            time.sleep(0.01)

    producer = threading.Thread(target=produce)
    producer.start()
    try:
        wait_until(lambda: len(notification_counts(notification_db, ids)) >= 20, timeout_s=30)
        platform.supervisor.stop("notification", sig=signal.SIGKILL)
        killed.set()
        producer.join(timeout=60)
    finally:
        killed.set()
        platform.restart_component("notification")
    assert len(ids) == 150
    counts = wait_until(lambda: (c := notification_counts(notification_db, ids)) and len(c) == 150 and c, timeout_s=60)
    assert set(counts) == set(ids)
    assert set(counts.values()) == {1}


def test_redis_restarted_mid_stream_the_outbox_catches_up(platform, monitoring_db, notification_db):
    user_id = 800_000 + int(time.time()) % 100_000
    ids = []

    def produce(count):
        # Written as the monitoring service writes its own events: into its outbox, in a transaction.
        with Session(monitoring_db) as session, session.begin():
            for _ in range(count):
                ids.append(
                    emit_sync(
                        session,
                        topic="notification.requested",
                        payload={"user_id": user_id, "type": "system", "title": "Hello", "message": "m", "link": None},
                        producer="monitoring",
                    )
                )

    produce(10)
    wait_until(lambda: len(notification_counts(notification_db, ids)) == 10, timeout_s=30)
    platform.redis.stop()
    try:
        produce(10)
        with monitoring_db.connect() as connection:
            waiting = connection.execute(
                text("SELECT count(*) FROM outbox_event WHERE published_at IS NULL AND id = ANY(CAST(:ids AS uuid[]))"),
                {"ids": ids},
            ).scalar()
        assert waiting == 10
    finally:
        platform.redis.start()
    counts = wait_until(lambda: (c := notification_counts(notification_db, ids)) and len(c) == 20 and c, timeout_s=60)
    assert set(counts.values()) == {1}
    # Every component is back before the next test.
    for name in ("notification", "monitoring", "gateway", "user_service"):
        wait_until(lambda n=name: httpx.get(f"{platform.url(n)}/health", timeout=5).status_code == 200, timeout_s=30)


def test_websocket_gets_the_notification_within_a_second(platform, monitoring_db, admin_headers):
    user_id = int(admin_headers["X-User-Id"])
    token = admin_headers["Authorization"].split()[1]
    url = f"ws://127.0.0.1:{platform.ports['notification']}/ws/notifications?token={token}"

    def push(title: str) -> None:
        with Session(monitoring_db) as session, session.begin():
            emit_sync(
                session,
                topic="notification.requested",
                payload={"user_id": user_id, "type": "system", "title": title, "message": "now", "link": "/x"},
                producer="monitoring",
            )

    async def receive(socket, title: str, timeout_s: float) -> dict:
        # Skip heartbeats and other pushes; wait longer than the goal so that a miss shows its delay.
        while True:
            message = json.loads(await asyncio.wait_for(socket.recv(), timeout=timeout_s))
            if message.get("type") == "notification" and message["notification"]["title"] == title:
                return message

    async def scenario():
        async with websockets.connect(url) as socket:
            assert json.loads(await socket.recv()) == {"type": "connected", "user_id": user_id}
            # A first push proves the path is up; the second is timed. An earlier test restarts Redis, and a push
            # published before the service has resubscribed is gone (pub/sub keeps nothing): warm up until one lands.
            for attempt in range(10):
                push(f"Warm-up {attempt}")
                try:
                    await receive(socket, f"Warm-up {attempt}", timeout_s=2.0)
                    break
                except TimeoutError:
                    continue
            else:
                raise AssertionError("no warm-up push reached the socket in 20 s")
            started = time.perf_counter()
            push("Push me")
            message = await receive(socket, "Push me", timeout_s=3.0)
            return message, time.perf_counter() - started

    message, delay = asyncio.run(scenario())
    assert delay < 1.0
    assert message["type"] == "notification"
    assert (message["notification"]["title"], message["notification"]["user_id"]) == ("Push me", user_id)


def test_websocket_with_an_invalid_token_is_closed_with_4401(platform):
    async def scenario():
        url = f"ws://127.0.0.1:{platform.ports['notification']}/ws/notifications?token=forged"
        async with websockets.connect(url) as socket:
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await asyncio.wait_for(socket.recv(), timeout=5)
        return closed.value.rcvd.code

    assert asyncio.run(scenario()) == 4401


def test_alert_opens_when_a_service_stops_and_resolves_with_one_admin_notification(platform, admin_headers):
    monitoring = platform.url("monitoring")
    rules = httpx.get(f"{monitoring}/alerts/rules", headers=admin_headers, timeout=10).json()
    rule = next(r for r in rules if r["kind"] == "component_unhealthy")

    def alerts(status):
        response = httpx.get(f"{monitoring}/alerts", params={"status": status}, headers=admin_headers, timeout=10)
        return [a for a in response.json()["items"] if a["subject"] == "file_manager"]

    def admin_notifications():
        response = httpx.get(
            f"{platform.url('notification')}/notifications",
            params={"page_size": 200},
            headers=admin_headers,
            timeout=10,
        )
        return [n for n in response.json()["items"] if n["title"] == "Alert: file_manager is unhealthy"]

    resolved_before = len(alerts("resolved"))
    httpx.patch(f"{monitoring}/alerts/rules/{rule['id']}", json={"duration_s": 2}, headers=admin_headers, timeout=10)
    try:
        platform.stop_component("file_manager")
        try:
            opened = wait_until(lambda: alerts("active"), timeout_s=30)
            overall = httpx.get(f"{monitoring}/health/overall", timeout=10).json()
            assert [a["id"] for a in overall["active_alerts"] if a["subject"] == "file_manager"] == [opened[0]["id"]]
        finally:
            platform.restart_component("file_manager")
        wait_until(lambda: not alerts("active") and len(alerts("resolved")) == resolved_before + 1, timeout_s=30)
    finally:
        httpx.patch(
            f"{monitoring}/alerts/rules/{rule['id']}", json={"duration_s": 60}, headers=admin_headers, timeout=10
        )
    assert len(opened) == 1
    assert opened[0]["title"] == "file_manager is unhealthy"
    notifications = wait_until(admin_notifications, timeout_s=30)
    time.sleep(2)  # a second notification for the same opening would have arrived by now
    notifications = admin_notifications()
    assert len(notifications) == 1
    assert notifications[0]["type"] == "alert"
    assert notifications[0]["user_id"] is None
    assert notifications[0]["link"] == f"/admin/monitoring/alerts/{opened[0]['id']}"
    mails = wait_until(
        lambda: [
            m for m in platform.smtp.to("admin@example.org") if m["Subject"] == "Alert: file_manager is unhealthy"
        ],
        timeout_s=30,
    )
    assert len(mails) == 1
