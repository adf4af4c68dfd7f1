"""Monitoring in process: statistics from events, samples and uptime, alert rules, the operator endpoints."""

import uuid
from datetime import UTC, datetime, timedelta

import psutil
import pytest
from sqlalchemy import select, text

from microservices.common.events import Event
from microservices.monitoring import service
from microservices.monitoring.config import Settings
from microservices.monitoring.main import build_app
from microservices.monitoring.models import Alert, HealthSample
from microservices.monitoring.schemas import ComponentHealth
from tests.harness import app_client

NOW = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture
async def app(databases):
    settings = Settings(
        sampler_enabled=False,
        consume_events=False,
        events_stream_prefix=f"t{uuid.uuid4().hex[:8]}:events:",
        log_json=False,
        access_log=False,
    )
    return build_app(settings)


@pytest.fixture
async def client(app, tokens):
    async with app_client(app, tokens=tokens) as c:
        yield c


@pytest.fixture
def session(app, client):
    return app.state.test_session


def admin(tokens):
    return tokens.headers(sub="1", username="root", roles=("admin",))


def researcher(tokens):
    return tokens.headers(sub="2", username="alice", roles=("researcher",))


def event(topic, payload, occurred_at=NOW):
    return Event(id=str(uuid.uuid4()), topic=topic, occurred_at=occurred_at, producer="tests", payload=payload)


async def job(session, job_id, status, at, service_id=1, user_id=7):
    await service.record_event(
        session=session,
        event=event(
            "job.status.updated",
            {
                "job_id": job_id,
                "user_id": user_id,
                "job_name": job_id,
                "service_id": service_id,
                "old_status": None,
                "new_status": status,
                "message": None,
                "occurred_at": at.isoformat(),
            },
        ),
    )


def health(name, status, at=NOW, error=None):
    return ComponentHealth(service_name=name, status=status, response_time_ms=5.0, checked_at=at, error=error)


async def test_dashboard_stats_come_from_job_upload_and_user_events(session, client, tokens):
    start = NOW - timedelta(hours=2)
    # Job a: queued, running after 60 s, completed after 600 s; b: failed; c: out of order (completed seen first).
    await job(session, "a", "queued", start)
    await job(session, "a", "running", start + timedelta(seconds=60))
    await job(session, "a", "completed", start + timedelta(seconds=660))
    await job(session, "b", "queued", start)
    await job(session, "b", "running", start + timedelta(seconds=20))
    await job(session, "b", "failed", start + timedelta(seconds=320))
    await job(session, "c", "completed", start + timedelta(seconds=500), service_id=2, user_id=8)
    await job(session, "c", "running", start + timedelta(seconds=100), service_id=2, user_id=8)
    await job(session, "old", "completed", NOW - timedelta(days=3), service_id=2)
    await service.record_event(
        session=session,
        event=event(
            "file.upload.completed",
            {"file_id": "f1", "user_id": 9, "filename": "x.vcf.gz", "size_bytes": 1000, "sha256": "0"},
        ),
    )
    await service.record_event(
        session=session,
        event=event(
            "file.upload.completed",
            {"file_id": "f1", "user_id": 9, "filename": "x.vcf.gz", "size_bytes": 1000, "sha256": "0"},
        ),
    )
    await service.record_event(session=session, event=event("user.action.logged", {"user_id": 10, "action": "login"}))

    response = await client.get("/dashboard/stats", headers=researcher(tokens))
    assert response.status_code == 200
    body = response.json()
    day = body["day"]
    assert day["jobs_by_status"] == {"completed": 2, "failed": 1}
    assert (day["total_jobs"], day["completed"], day["failed"], day["success_rate"]) == (3, 2, 1, 66.67)
    assert day["per_service"] == [
        {
            "service_id": 1,
            "jobs": 2,
            "completed": 1,
            "failed": 1,
            "success_rate": 50.0,
            "median_queue_s": 40.0,
            "median_run_s": 450.0,
        },
        {
            "service_id": 2,
            "jobs": 1,
            "completed": 1,
            "failed": 0,
            "success_rate": 100.0,
            "median_queue_s": 0.0,
            "median_run_s": 400.0,
        },
    ]
    assert (day["active_users"], day["uploads"], day["upload_bytes"]) == (4, 1, 1000)
    assert body["week"]["total_jobs"] == 4
    assert body["week"]["jobs_by_status"] == {"completed": 3, "failed": 1}
    assert body["month"]["total_jobs"] == 4


async def test_late_running_event_does_not_undo_completion(session, client, tokens):
    await job(session, "z", "completed", NOW)
    await job(session, "z", "running", NOW - timedelta(minutes=5))
    row = (await session.execute(text("SELECT status, started_at, finished_at FROM job_stat WHERE job_id = 'z'"))).one()
    assert row.status == "completed"
    assert row.started_at == NOW - timedelta(minutes=5)
    assert row.finished_at == NOW


async def test_dashboard_needs_a_token(client):
    assert (await client.get("/dashboard/stats")).status_code == 401


async def samples(session, name, statuses, *, step_s=30, end=NOW):
    for n, status in enumerate(statuses):
        at = end - timedelta(seconds=step_s * (len(statuses) - 1 - n))
        session.add(HealthSample(component=name, status=status, response_time_ms=10.0 + n, error=None, checked_at=at))
    await session.flush()


async def outbox_rows(session):
    return (await session.execute(text("SELECT topic, payload, producer FROM outbox_event ORDER BY occurred_at"))).all()


async def test_component_unhealthy_longer_than_a_minute_opens_one_alert_and_one_notification(session, client):
    await samples(session, "file_manager", ["healthy", "unhealthy", "unhealthy"], step_s=40)
    components = [health("file_manager", "unhealthy", error="RuntimeError: /health answered 503")]
    opened = await service.evaluate_alerts(
        session=session, components=components, disk_percent=10, disk_path="/", min_jobs=5, now=NOW
    )
    # Unhealthy for 40 s only: not yet.
    assert opened == []
    await samples(session, "file_manager", ["unhealthy"], end=NOW + timedelta(seconds=30))
    later = NOW + timedelta(seconds=30)
    opened = await service.evaluate_alerts(
        session=session, components=components, disk_percent=10, disk_path="/", min_jobs=5, now=later
    )
    assert [(a.subject, a.title, a.severity, a.status) for a in opened] == [
        ("file_manager", "file_manager is unhealthy", "critical", "active")
    ]
    assert opened[0].message == (
        f"file_manager has been unhealthy since {(NOW - timedelta(seconds=40)):%Y-%m-%d %H:%M:%S} UTC: "
        "RuntimeError: /health answered 503"
    )
    again = await service.evaluate_alerts(
        session=session,
        components=components,
        disk_percent=10,
        disk_path="/",
        min_jobs=5,
        now=later + timedelta(seconds=30),
    )
    assert again == []
    rows = await outbox_rows(session)
    assert len(rows) == 1
    topic, payload, producer = rows[0]
    assert (topic, producer) == ("notification.requested", "monitoring")
    assert payload == {
        "user_id": None,
        "type": "alert",
        "title": "Alert: file_manager is unhealthy",
        "message": opened[0].message,
        "link": f"/admin/monitoring/alerts/{opened[0].id}",
        "data": {"alert_id": opened[0].id, "rule": "component_unhealthy", "severity": "critical"},
    }

    await samples(session, "file_manager", ["healthy"], end=later + timedelta(seconds=60))
    await service.evaluate_alerts(
        session=session,
        components=[health("file_manager", "healthy")],
        disk_percent=10,
        disk_path="/",
        min_jobs=5,
        now=later + timedelta(seconds=60),
    )
    alert = await session.get(Alert, opened[0].id)
    await session.refresh(alert)
    assert (alert.status, alert.resolved_at) == ("resolved", later + timedelta(seconds=60))
    assert len(await outbox_rows(session)) == 1


async def test_disk_failure_rate_and_external_service_rules(session, client):
    for n in range(5):
        await job(session, f"j{n}", "failed" if n < 3 else "completed", NOW - timedelta(minutes=10))
    await service.record_event(
        session=session,
        event=event(
            "service.health.changed",
            {
                "service_id": 3,
                "name": "TOPMed",
                "old_status": "healthy",
                "new_status": "unhealthy",
                "checked_at": (NOW - timedelta(minutes=10)).isoformat(),
                "error": "HTTP 502",
            },
        ),
    )
    opened = await service.evaluate_alerts(
        session=session, components=[], disk_percent=95.5, disk_path="/data", min_jobs=5
    )
    assert sorted((a.subject, a.title) for a in opened) == [
        ("disk:/data", "Disk /data is 96 % full"),
        ("jobs", "60 % of jobs failed"),
        ("service:3", "External service TOPMed is down"),
    ]
    by_subject = {a.subject: a for a in opened}
    assert by_subject["jobs"].message == "3 of the 5 jobs that finished in the last 60 minutes failed (threshold 50 %)."
    assert by_subject["service:3"].message.endswith("UTC: HTTP 502")
    assert len(await outbox_rows(session)) == 3


async def test_disabled_rule_resolves_its_alerts(session, client, tokens):
    await service.evaluate_alerts(session=session, components=[], disk_percent=99, disk_path="/", min_jobs=5)
    rules = {r["kind"]: r for r in (await client.get("/alerts/rules", headers=admin(tokens))).json()}
    response = await client.patch(
        f"/alerts/rules/{rules['disk_usage']['id']}", headers=admin(tokens), json={"enabled": False}
    )
    assert response.status_code == 200
    assert response.json()["enabled"] is False
    await service.evaluate_alerts(session=session, components=[], disk_percent=99, disk_path="/", min_jobs=5)
    assert (await client.get("/alerts?status=active", headers=admin(tokens))).json()["total"] == 0


async def test_alert_endpoints(session, client, tokens):
    await service.evaluate_alerts(session=session, components=[], disk_percent=99, disk_path="/", min_jobs=5)
    listed = (await client.get("/alerts", headers=admin(tokens))).json()
    assert listed["total"] == 1
    alert = listed["items"][0]
    assert (alert["title"], alert["status"], alert["acknowledged_at"]) == ("Disk / is 99 % full", "active", None)

    assert [a.id for a in await service.active_alerts(session=session)] == [alert["id"]]

    response = await client.post(f"/alerts/{alert['id']}/acknowledge", headers=admin(tokens))
    assert response.status_code == 200
    assert response.json()["acknowledged_by"] == "root"
    assert response.json()["acknowledged_at"] is not None
    missing = await client.post("/alerts/999999/acknowledge", headers=admin(tokens))
    assert missing.status_code == 404
    assert missing.json() == {"error": "alert_not_found", "detail": "Alert 999999 was not found."}
    assert (await client.get("/alerts", headers=researcher(tokens))).status_code == 403


async def test_rules_are_listed_and_only_admins_change_them(client, tokens):
    rules = (await client.get("/alerts/rules", headers=admin(tokens))).json()
    assert [(r["kind"], r["threshold"], r["duration_s"]) for r in rules] == [
        ("component_unhealthy", 0.0, 60),
        ("external_service_down", 0.0, 300),
        ("job_failure_rate", 0.5, 3600),
        ("disk_usage", 90.0, 0),
    ]
    operator = tokens.headers(sub="3", roles=("service_admin",))
    assert (
        await client.patch(f"/alerts/rules/{rules[0]['id']}", headers=operator, json={"duration_s": 5})
    ).status_code == 403
    response = await client.patch(f"/alerts/rules/{rules[0]['id']}", headers=admin(tokens), json={"duration_s": 5})
    assert response.json()["duration_s"] == 5
    bad = await client.patch(f"/alerts/rules/{rules[0]['id']}", headers=admin(tokens), json={"duration_s": -1})
    assert bad.status_code == 422
    missing = await client.patch("/alerts/rules/999", headers=admin(tokens), json={"enabled": False})
    assert missing.status_code == 404


async def test_health_services_reports_history_and_uptime(session, client, tokens):
    await samples(session, "gateway", ["healthy", "healthy", "unhealthy", "healthy"])
    await samples(session, "redis", ["healthy"] * 3)
    session.add(
        HealthSample(
            component="gateway", status="unhealthy", response_time_ms=1, error=None, checked_at=NOW - timedelta(days=2)
        )
    )
    await service.rollup_hourly(session=session)
    body = (await client.get("/health/services?history=2", headers=admin(tokens))).json()
    by_name = {s["service_name"]: s for s in body["services"]}
    gateway = by_name["gateway"]
    assert (gateway["status"], gateway["uptime_24h"]) == ("healthy", 75.0)
    assert [p["status"] for p in gateway["history"]] == ["healthy", "unhealthy"]
    assert gateway["uptime_7d"] == 75.0  # the 2-day-old sample predates the rollup window
    assert (by_name["redis"]["uptime_24h"], len(by_name["redis"]["history"])) == (100.0, 2)
    assert (await client.get("/health/services", headers=researcher(tokens))).status_code == 403


async def test_retention_deletes_old_samples(session, client):
    session.add(
        HealthSample(
            component="x", status="healthy", response_time_ms=1, error=None, checked_at=NOW - timedelta(days=8)
        )
    )
    session.add(
        HealthSample(
            component="x", status="healthy", response_time_ms=1, error=None, checked_at=NOW - timedelta(days=6)
        )
    )
    await session.flush()
    deleted = await service.apply_retention(session=session, raw_days=7, hourly_days=90)
    assert deleted["health_sample"] == 1
    left = (await session.scalars(select(HealthSample.checked_at).where(HealthSample.component == "x"))).all()
    assert left == [NOW - timedelta(days=6)]


async def test_system_metrics(client, tokens):
    response = await client.get("/metrics/system", headers=admin(tokens))
    assert response.status_code == 200
    body = response.json()
    assert body["cpu_count"] == psutil.cpu_count()
    assert body["memory_total_bytes"] == psutil.virtual_memory().total
    assert body["disk_path"] == "/"
    assert body["disk_total_bytes"] == psutil.disk_usage("/").total
    assert 0 <= body["cpu_percent"] <= 100
    assert (await client.get("/metrics/system")).status_code == 401


async def test_overall_health_answers_when_its_own_database_is_away(tokens):
    from microservices.common.localinfra import free_port

    settings = Settings(
        database_url=f"postgresql://postgres@127.0.0.1:{free_port()}/monitoring_db",
        sampler_enabled=False,
        consume_events=False,
        component_timeout_s=1.0,
        log_json=False,
        access_log=False,
    )
    async with app_client(build_app(settings), tokens=tokens, rollback=False) as client:
        response = await client.get("/health/overall")
    assert response.status_code == 200
    body = response.json()
    by_name = {c["service_name"]: c for c in body["services"]}
    assert by_name["postgresql"]["status"] == "unhealthy"
    assert body["overall_status"] == "unhealthy"
    assert body["active_alerts"] == []
