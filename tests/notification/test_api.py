"""The notification API in process: listing, marking, deleting, preferences and webhooks, each user's own."""

from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from microservices.common.events import Event
from microservices.notification import service
from microservices.notification.models import EmailMessage, Notification, Webhook, WebhookDelivery
from tests.harness import app_client
from tests.notification.conftest import build_app, make_settings

ALICE, BOB, ADMIN = 101, 102, 103


@pytest.fixture
async def app(databases):
    return build_app(make_settings())


@pytest.fixture
async def client(app, tokens):
    async with app_client(app, tokens=tokens) as c:
        yield c


def auth(tokens, user_id, roles=("researcher",)):
    return tokens.headers(sub=str(user_id), username=f"user{user_id}", roles=roles)


async def add(app, user_id, title="Job 'x' completed", type="job_completed", **kwargs):
    created = await service.notify(
        session=app.state.test_session,
        settings=app.state.settings,
        user_id=user_id,
        type=type,
        title=title,
        message=kwargs.pop("message", "It finished."),
        link=kwargs.pop("link", "/jobs/1"),
        **kwargs,
    )
    return created


def job_event(user_id, new_status="completed", **payload):
    return Event(
        id="3f1f0f3e-2b5a-4bde-9d8c-8a3a3c1b2f10",
        topic="job.status.updated",
        occurred_at=datetime(2026, 11, 22, 3, 0, tzinfo=UTC),
        producer="job_processor",
        payload={
            "job_id": "9d2c",
            "user_id": user_id,
            "job_name": "chr20 run",
            "service_id": 4,
            "old_status": "running",
            "new_status": new_status,
            "message": None,
            "occurred_at": "2026-11-22T03:00:00+00:00",
            **payload,
        },
    )


async def test_requests_without_a_token_are_refused(client):
    response = await client.get("/notifications")
    assert response.status_code == 401
    assert response.json()["error"] == "not_authenticated"


async def test_service_accounts_have_no_notifications(client, tokens):
    headers = tokens.headers(sub="job_processor", roles=(), audience="federated-imputation-internal")
    response = await client.get("/notifications", headers=headers)
    assert response.status_code == 403
    assert response.json()["error"] == "not_a_user"


async def test_list_is_the_callers_own_newest_first_and_paginated(app, client, tokens):
    for n in range(3):
        await add(app, ALICE, title=f"alice {n}")
    await add(app, BOB, title="bob 0")
    response = await client.get("/notifications?page_size=2", headers=auth(tokens, ALICE))
    assert response.status_code == 200
    body = response.json()
    assert (body["total"], body["page"], body["page_size"]) == (3, 1, 2)
    assert [n["title"] for n in body["items"]] == ["alice 2", "alice 1"]
    first = body["items"][0]
    assert first["user_id"] == ALICE
    assert first["type"] == "job_completed"
    assert first["message"] == "It finished."
    assert first["link"] == "/jobs/1"
    assert first["is_read"] is False
    assert first["read_at"] is None
    page2 = (await client.get("/notifications?page_size=2&page=2", headers=auth(tokens, ALICE))).json()
    assert [n["title"] for n in page2["items"]] == ["alice 0"]


async def test_read_one_read_all_and_unread_filter(app, client, tokens):
    ids = [(await add(app, ALICE, title=f"n{n}")).notification.id for n in range(3)]
    await add(app, BOB, title="bob's")
    headers = auth(tokens, ALICE)
    assert (await client.get("/notifications/unread-count", headers=headers)).json() == {"unread": 3}

    response = await client.post(f"/notifications/{ids[0]}/read", headers=headers)
    assert response.status_code == 200
    assert response.json()["is_read"] is True
    assert response.json()["read_at"] is not None
    assert (await client.get("/notifications/unread-count", headers=headers)).json() == {"unread": 2}
    unread = (await client.get("/notifications?unread=true", headers=headers)).json()
    assert [n["id"] for n in unread["items"]] == [ids[2], ids[1]]

    assert (await client.post("/notifications/read-all", headers=headers)).json() == {"marked_read": 2}
    assert (await client.get("/notifications/unread-count", headers=headers)).json() == {"unread": 0}
    assert (await client.get("/notifications/unread-count", headers=auth(tokens, BOB))).json() == {"unread": 1}


async def test_another_users_notification_is_not_found(app, client, tokens):
    bobs = (await add(app, BOB)).notification.id
    for method, path in (("POST", f"/notifications/{bobs}/read"), ("DELETE", f"/notifications/{bobs}")):
        response = await client.request(method, path, headers=auth(tokens, ALICE))
        assert response.status_code == 404
        assert response.json() == {
            "error": "notification_not_found",
            "detail": f"Notification {bobs} was not found.",
        }


async def test_delete_removes_the_notification(app, client, tokens):
    own = (await add(app, ALICE)).notification.id
    response = await client.delete(f"/notifications/{own}", headers=auth(tokens, ALICE))
    assert response.status_code == 204
    assert (await client.get("/notifications", headers=auth(tokens, ALICE))).json()["total"] == 0


async def test_admins_share_the_admin_notifications(app, client, tokens):
    await add(app, None, title="Alert: notification down", type="alert")
    admin = (await client.get("/notifications", headers=auth(tokens, ADMIN, roles=("admin",)))).json()
    assert [n["title"] for n in admin["items"]] == ["Alert: notification down"]
    assert admin["items"][0]["user_id"] is None
    assert (await client.get("/notifications", headers=auth(tokens, ALICE))).json()["total"] == 0


async def test_preferences_have_defaults_and_can_be_changed(client, tokens):
    headers = auth(tokens, ALICE)
    body = (await client.get("/notifications/preferences", headers=headers)).json()
    by_type = {p["event_type"]: p for p in body["preferences"]}
    assert by_type["job_completed"] == {
        "event_type": "job_completed",
        "in_app": True,
        "email": True,
        "webhook": True,
        "is_default": True,
    }
    assert by_type["job_failed"]["email"] is True
    assert by_type["job_status"]["in_app"] is False

    response = await client.put(
        "/notifications/preferences",
        headers=headers,
        json={"preferences": {"job_completed": {"in_app": True, "email": False, "webhook": False}}},
    )
    assert response.status_code == 200
    by_type = {p["event_type"]: p for p in response.json()["preferences"]}
    assert by_type["job_completed"] == {
        "event_type": "job_completed",
        "in_app": True,
        "email": False,
        "webhook": False,
        "is_default": False,
    }
    assert by_type["job_failed"]["is_default"] is True


async def test_unknown_preference_type_is_refused(client, tokens):
    response = await client.put(
        "/notifications/preferences",
        headers=auth(tokens, ALICE),
        json={"preferences": {"lunch": {"in_app": True, "email": True, "webhook": True}}},
    )
    assert response.status_code == 400
    assert response.json()["error"] == "unknown_notification_type"


async def test_job_completed_event_makes_an_in_app_notification_and_queues_an_email(app, client, tokens):
    session = app.state.test_session
    created = await service.notify_from_event(session=session, settings=app.state.settings, event=job_event(ALICE))
    assert created.emails == 1
    notification = created.notification
    assert (notification.user_id, notification.type, notification.title, notification.link) == (
        ALICE,
        "job_completed",
        "Job 'chr20 run' completed",
        "/jobs/9d2c",
    )
    assert notification.message == "Job 'chr20 run' completed."
    assert notification.data == {"job_id": "9d2c", "service_id": 4, "old_status": "running", "new_status": "completed"}
    email = (await session.scalars(select(EmailMessage).where(EmailMessage.user_id == ALICE))).one()
    assert email.subject == "Job 'chr20 run' completed"
    assert email.status == "pending"
    assert "http://localhost:3000/jobs/9d2c" in email.body_text
    assert 'href="http://localhost:3000/jobs/9d2c"' in email.body_html


async def test_preferences_decide_the_channels(app, client, tokens):
    await client.put(
        "/notifications/preferences",
        headers=auth(tokens, ALICE),
        json={"preferences": {"job_failed": {"in_app": True, "email": False, "webhook": False}}},
    )
    session = app.state.test_session
    created = await service.notify_from_event(
        session=session,
        settings=app.state.settings,
        event=job_event(ALICE, "failed", message="Beagle ran out of memory"),
    )
    assert created.emails == 0
    assert created.notification.title == "Job 'chr20 run' failed"
    assert created.notification.message == "Beagle ran out of memory"
    # An intermediate state tells nobody by default.
    quiet = await service.notify_from_event(
        session=session, settings=app.state.settings, event=job_event(BOB, "running")
    )
    assert (quiet.notification, quiet.emails) == (None, 0)


async def test_webhook_secret_is_shown_once_and_stored_encrypted(app, client, tokens):
    headers = auth(tokens, ALICE)
    response = await client.post(
        "/notifications/webhooks",
        headers=headers,
        json={"url": "https://hooks.example.org/imputation", "event_types": ["job_failed", "job_completed"]},
    )
    assert response.status_code == 201
    created = response.json()
    assert created["url"] == "https://hooks.example.org/imputation"
    assert created["event_types"] == ["job_completed", "job_failed"]
    assert created["secret"].startswith("whsec_")
    stored = await app.state.test_session.get(Webhook, created["id"])
    assert created["secret"] not in stored.secret_encrypted
    listed = (await client.get("/notifications/webhooks", headers=headers)).json()
    assert listed["total"] == 1
    assert "secret" not in listed["items"][0]
    assert (await client.get("/notifications/webhooks", headers=auth(tokens, BOB))).json()["total"] == 0


async def test_webhook_gets_a_delivery_for_its_types_only(app, client, tokens):
    headers = auth(tokens, ALICE)
    hook = (
        await client.post(
            "/notifications/webhooks",
            headers=headers,
            json={"url": "https://h.example.org/", "event_types": ["job_failed"]},
        )
    ).json()
    session = app.state.test_session
    await service.notify_from_event(session=session, settings=app.state.settings, event=job_event(ALICE, "completed"))
    failed = await service.notify_from_event(
        session=session, settings=app.state.settings, event=job_event(ALICE, "failed")
    )
    assert failed.webhook_deliveries == 1
    deliveries = (await client.get(f"/notifications/webhooks/{hook['id']}/deliveries", headers=headers)).json()
    assert deliveries["total"] == 1
    assert (deliveries["items"][0]["event_type"], deliveries["items"][0]["status"]) == ("job_failed", "pending")
    assert (
        await client.get(f"/notifications/webhooks/{hook['id']}/deliveries", headers=auth(tokens, BOB))
    ).status_code == 404


async def test_deleting_a_webhook_removes_its_log(app, client, tokens):
    headers = auth(tokens, ALICE)
    hook = (
        await client.post("/notifications/webhooks", headers=headers, json={"url": "https://h.example.org/"})
    ).json()
    await service.notify_from_event(session=app.state.test_session, settings=app.state.settings, event=job_event(ALICE))
    response = await client.delete(f"/notifications/webhooks/{hook['id']}", headers=headers)
    assert response.status_code == 204
    assert (await app.state.test_session.scalars(select(WebhookDelivery))).all() == []
    response = await client.delete(f"/notifications/webhooks/{hook['id']}", headers=headers)
    assert response.status_code == 404
    assert response.json()["error"] == "webhook_not_found"


async def test_webhook_url_must_be_http(client, tokens):
    response = await client.post("/notifications/webhooks", headers=auth(tokens, ALICE), json={"url": "ftp://x.org/"})
    assert response.status_code == 422


async def test_service_health_and_requested_notifications_go_to_admins(app, client, tokens):
    session = app.state.test_session
    event = Event(
        id="4a1f0f3e-2b5a-4bde-9d8c-8a3a3c1b2f11",
        topic="service.health.changed",
        occurred_at=datetime(2026, 11, 22, 3, 0, tzinfo=UTC),
        producer="service_registry",
        payload={
            "service_id": 2,
            "name": "H3Africa",
            "old_status": "healthy",
            "new_status": "unhealthy",
            "checked_at": "2026-11-22T03:00:00+00:00",
            "error": "connect timeout",
        },
    )
    created = await service.notify_from_event(session=session, settings=app.state.settings, event=event)
    assert (created.notification.user_id, created.notification.title) == (None, "Service H3Africa is unhealthy")
    assert created.notification.message == "H3Africa went from healthy to unhealthy. connect timeout"
    requested = Event(
        id="5a1f0f3e-2b5a-4bde-9d8c-8a3a3c1b2f12",
        topic="notification.requested",
        occurred_at=datetime(2026, 11, 22, 3, 0, tzinfo=UTC),
        producer="monitoring",
        payload={"user_id": ALICE, "type": "system", "title": "Maintenance", "message": "Tonight.", "link": None},
    )
    created = await service.notify_from_event(session=session, settings=app.state.settings, event=requested)
    assert (created.notification.user_id, created.notification.type, created.emails) == (ALICE, "system", 0)
    rows = (await session.scalars(select(Notification).order_by(Notification.id))).all()
    assert [(r.user_id, r.title) for r in rows] == [(None, "Service H3Africa is unhealthy"), (ALICE, "Maintenance")]


async def test_missing_smtp_is_a_health_warning(client):
    response = await client.get("/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "degraded"
    assert body["checks"]["smtp"]["status"] == "warning"
    assert (
        body["checks"]["smtp"]["error"] == "SMTP is not configured (set SMTP_HOST); 0 e-mails are waiting to be sent."
    )


async def test_smtp_settings_are_read_without_prefix(monkeypatch):
    monkeypatch.setenv("SMTP_HOST", "mail.example.org")
    monkeypatch.setenv("SMTP_PORT", "2525")
    monkeypatch.setenv("SMTP_PASSWORD", "s3cret-relay")
    monkeypatch.setenv("NOTIFICATION_SMTP_USE_TLS", "true")
    settings = make_settings()
    assert (settings.smtp_host, settings.smtp_port, settings.smtp_use_tls) == ("mail.example.org", 2525, True)
    assert settings.smtp_password.get_secret_value() == "s3cret-relay"
    assert "s3cret-relay" not in repr(settings)


@pytest.mark.parametrize(
    ("url", "host"),
    [
        ("http://127.0.0.1:8001/users", "the private address 127.0.0.1"),
        ("http://10.1.2.3/", "the private address 10.1.2.3"),
        ("http://[::1]/", "the private address ::1"),
        ("http://localhost:8000/", "localhost"),
        ("http://redis.internal/", "redis.internal"),
    ],
)
async def test_webhooks_into_the_platforms_network_are_refused(tokens, databases, url, host):
    app = build_app(make_settings(webhook_allow_private_urls=False))
    async with app_client(app, tokens=tokens) as client:
        response = await client.post("/notifications/webhooks", headers=auth(tokens, ALICE), json={"url": url})
    assert response.status_code == 400
    assert response.json() == {"error": "webhook_url_not_allowed", "detail": f"Webhooks cannot point at {host}."}
