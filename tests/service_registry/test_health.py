"""Health checks: each protocol's probe over real HTTP, the health log, the Redis cache, events, deactivation."""

import socket
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

from microservices.service_registry import service as registry
from microservices.service_registry.main import build_app
from microservices.service_registry.models import ImputationService
from tests.fakes.serve import serve_asgi
from tests.harness import app_client
from tests.service_registry.conftest import MICHIGAN_TOKEN, OUTBOX, async_wait_until, create, events, registry_settings

# service-info as sapporo 2.4.0 answers it (protocols/ga4gh-wes.md §5), trimmed to the fields that matter here.
SAPPORO_SERVICE_INFO = {
    "id": "sapporo-service",
    "name": "sapporo-service",
    "type": {"group": "sapporo-wes", "artifact": "wes", "version": "sapporo-wes-2.1.0"},
    "version": "2.4.0",
    "workflow_type_versions": {"CWL": {"workflow_type_version": ["v1.0", "v1.1", "v1.2"]}},
    "supported_wes_versions": ["sapporo-wes-2.1.0"],
    "supported_filesystem_protocols": ["file", "http", "https"],
    "workflow_engine_versions": {"cwltool": {"workflow_engine_version": ["3.3.20260925135507"]}},
    "default_workflow_engine_parameters": {},
    "system_state_counts": {},
    "auth_instructions_url": "",
    "tags": {},
}


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wes_app(body: dict, status_code: int = 200) -> Starlette:
    async def service_info(request):
        return JSONResponse(body, status_code=status_code)

    return Starlette(routes=[Route("/ga4gh/wes/v1/service-info", service_info)])


async def test_michigan_fake_is_healthy_and_the_check_is_logged_cached_and_published(
    app, client, michigan, service_admin, researcher
):
    base_url, fake = michigan
    created = await create(client, service_admin, base_url=base_url, credential=MICHIGAN_TOKEN)
    response = await client.get(f"/services/{created['id']}/health?refresh=true", headers=researcher)
    assert response.status_code == 200
    health = response.json()
    assert (health["service_id"], health["status"], health["error_message"]) == (created["id"], "healthy", None)
    assert 0 < health["response_time_ms"] < 2000
    assert fake.requests["GET /api/v2/server"] == 1
    service = (await client.get(f"/services/{created['id']}", headers=researcher)).json()
    assert (service["health_status"], service["is_available"]) == ("healthy", True)
    cached = await app.state.health_checker.cached(created["id"])
    assert cached.status == "healthy"
    assert (await client.get(f"/services/{created['id']}/health", headers=researcher)).json() == health
    history = (await client.get(f"/services/{created['id']}/health/history", headers=researcher)).json()
    assert history["total"] == 1
    assert (history["items"][0]["status"], history["items"][0]["http_status"]) == ("healthy", 200)
    (event,) = await events(app, "service.health.changed")
    assert event == {
        "service_id": created["id"],
        "name": "Michigan Imputation Server",
        "old_status": "unknown",
        "new_status": "healthy",
        "checked_at": health["checked_at"].replace("Z", "+00:00"),
        "error": None,
    }


async def test_closed_port_is_unhealthy_with_the_reason(app, client, service_admin, researcher):
    port = closed_port()
    created = await create(client, service_admin, base_url=f"http://127.0.0.1:{port}")
    health = (await client.get(f"/services/{created['id']}/health?refresh=true", headers=researcher)).json()
    assert health["status"] == "unhealthy"
    assert health["error_message"] == f"connection refused by 127.0.0.1:{port}"
    assert health["response_time_ms"] is None
    history = (await client.get(f"/services/{created['id']}/health/history", headers=researcher)).json()
    assert history["items"][0]["error_message"] == f"connection refused by 127.0.0.1:{port}"
    assert history["items"][0]["http_status"] is None


async def test_maintenance_answer_is_unhealthy_and_recovery_publishes_each_change(
    app, client, michigan, service_admin, researcher
):
    base_url, fake = michigan
    created = await create(client, service_admin, base_url=base_url)
    checker = app.state.health_checker
    session = app.state.test_session
    service = await session.get(ImputationService, created["id"])
    await checker.check_services(session=session, services=[service])
    fake.down = "maintenance"
    (down,) = await checker.check_services(session=session, services=[service])
    assert (down.status, down.error_message) == (
        "unhealthy",
        "HTTP 503: This functionality is currently under maintenance.",
    )
    await checker.check_services(session=session, services=[service])
    fake.down = None
    await checker.check_services(session=session, services=[service])
    changes = [(e["old_status"], e["new_status"]) for e in await events(app, "service.health.changed")]
    assert changes == [("unknown", "healthy"), ("healthy", "unhealthy"), ("unhealthy", "healthy")]
    history = (await client.get(f"/services/{created['id']}/health/history?page_size=2", headers=researcher)).json()
    assert history["total"] == 4
    assert [i["status"] for i in history["items"]] == ["healthy", "unhealthy"]


async def test_refresh_is_rate_limited_per_service(client, michigan, service_admin, researcher):
    base_url, fake = michigan
    created = await create(client, service_admin, base_url=base_url)
    first = (await client.get(f"/services/{created['id']}/health?refresh=true", headers=researcher)).json()
    second = (await client.get(f"/services/{created['id']}/health?refresh=true", headers=researcher)).json()
    assert second == first
    assert fake.requests["GET /api/v2/server"] == 1


async def test_wes_probe_reads_service_info(client, service_admin, researcher):
    async with serve_asgi(wes_app(SAPPORO_SERVICE_INFO)) as base_url:
        created = await create(
            client, service_admin, name="ILIFU", api_type="ga4gh_wes", base_url=f"{base_url}/ga4gh/wes/v1"
        )
        health = (await client.get(f"/services/{created['id']}/health?refresh=true", headers=researcher)).json()
    assert (health["status"], health["error_message"]) == ("healthy", None)


async def test_wes_probe_refuses_an_answer_that_is_not_service_info(client, service_admin, researcher):
    async with serve_asgi(wes_app({"status": "ok"})) as base_url:
        created = await create(
            client, service_admin, name="ILIFU", api_type="ga4gh_wes", base_url=f"{base_url}/ga4gh/wes/v1"
        )
        health = (await client.get(f"/services/{created['id']}/health?refresh=true", headers=researcher)).json()
    assert health["status"] == "unhealthy"
    assert health["error_message"] == "the answer is not a WES service-info (no workflow_type_versions)"


async def test_test_connection_probes_without_saving(client, michigan, service_admin, researcher):
    base_url, _ = michigan
    response = await client.post(
        "/services/test-connection",
        json={"api_type": "michigan", "base_url": base_url, "credential": MICHIGAN_TOKEN},
        headers=service_admin,
    )
    assert response.status_code == 200
    body = response.json()
    assert (body["status"], body["http_status"], body["error_message"]) == ("healthy", 200, None)
    assert body["details"]["logged_in"] is True
    assert body["details"]["apps"] == [
        {"id": "imputationserver2@2.0.12", "name": "Genotype Imputation", "version": "2.0.12"}
    ]
    assert (await client.get("/services", headers=researcher)).json()["total"] == 0
    denied = await client.post(
        "/services/test-connection", json={"api_type": "michigan", "base_url": base_url}, headers=researcher
    )
    assert denied.status_code == 403


async def test_service_failing_for_30_days_is_deactivated_and_published(app, client, service_admin):
    port = closed_port()
    created = await create(client, service_admin, base_url=f"http://127.0.0.1:{port}")
    session = app.state.test_session
    await session.execute(
        update(ImputationService)
        .where(ImputationService.id == created["id"])
        .values(health_status="unhealthy", failing_since=datetime.now(UTC) - timedelta(days=30, minutes=1))
    )
    service = await session.get(ImputationService, created["id"])
    await session.refresh(service)
    await app.state.health_checker.check_services(session=session, services=[service])
    assert service.is_active is False
    published = await events(app, "service.changed")
    assert [(e["action"], e["origin"]) for e in published] == [("created", "registry"), ("updated", "health_checker")]
    assert published[1]["service"]["is_active"] is False


async def test_due_services_follow_the_adaptive_interval(app, client, service_admin):
    session = app.state.test_session
    now = datetime.now(UTC)
    ids = {}
    for name, status, ago_s in [
        ("never", "unknown", None),
        ("healthy-recent", "healthy", 600),
        ("healthy-stale", "healthy", 901),
        ("unhealthy-recent", "unhealthy", 30),
        ("unhealthy-stale", "unhealthy", 61),
    ]:
        ids[name] = (await create(client, service_admin, name=name))["id"]
        checked = None if ago_s is None else now - timedelta(seconds=ago_s)
        await session.execute(
            update(ImputationService)
            .where(ImputationService.id == ids[name])
            .values(health_status=status, last_checked_at=checked)
        )
    inactive = (await create(client, service_admin, name="inactive", is_active=False))["id"]
    due = await registry.due_for_check(session=session, now=now, healthy_interval_s=900, unhealthy_interval_s=60)
    names = [s.name for s in due]
    assert names == ["never", "healthy-stale", "unhealthy-stale"]
    assert inactive not in [s.id for s in due]


async def test_background_checker_checks_a_new_service_within_a_tick_and_sees_it_go_down(
    databases, tokens, michigan, service_admin
):
    base_url, fake = michigan
    # Intervals shortened from 15 min / 1 min so that the test sees a healthy service go down.
    settings = registry_settings(
        health_check_enabled=True,
        health_check_tick_s=0.2,
        health_interval_healthy_s=1.0,
        health_interval_unhealthy_s=0.5,
    )
    app = build_app(settings)
    async with app_client(app, tokens=tokens, rollback=False) as client:
        created = await create(client, service_admin, name="Background", base_url=base_url)
        try:

            async def healthy() -> bool:
                response = await client.get(f"/services/{created['id']}", headers=service_admin)
                return response.json()["health_status"] == "healthy"

            await async_wait_until(healthy, timeout_s=10)
            assert (await app.state.health_checker.cached(created["id"])).status == "healthy"
            async with app.state.database.sessionmaker() as session:
                service = await session.scalar(select(ImputationService).where(ImputationService.id == created["id"]))
                assert service.last_checked_at is not None
            fake.down = "maintenance"

            async def unhealthy() -> bool:
                response = await client.get(f"/services/{created['id']}", headers=service_admin)
                return response.json()["health_status"] == "unhealthy"

            # Within one healthy interval plus a tick.
            await async_wait_until(unhealthy, timeout_s=3)
            async with app.state.database.sessionmaker() as session:
                rows = await session.execute(
                    select(OUTBOX.c.payload)
                    .where(OUTBOX.c.topic == "service.health.changed")
                    .order_by(OUTBOX.c.occurred_at)
                )
                changes = [
                    (p["old_status"], p["new_status"]) for p in rows.scalars() if p["service_id"] == created["id"]
                ]
            assert changes == [("unknown", "healthy"), ("healthy", "unhealthy")]
        finally:
            fake.down = None
            await client.delete(f"/services/{created['id']}", headers=service_admin)


async def test_a_server_that_never_answers_is_unhealthy_after_the_timeout(databases, tokens, michigan, service_admin):
    base_url, fake = michigan
    fake.down, fake.hang_s = "hang", 2.0
    app = build_app(registry_settings(health_total_timeout_s=0.5, health_connect_timeout_s=0.5))
    async with app_client(app, tokens=tokens) as client:
        created = await create(client, service_admin, base_url=base_url)
        health = (await client.get(f"/services/{created['id']}/health?refresh=true", headers=service_admin)).json()
    fake.down = None
    assert health["status"] == "unhealthy"
    assert health["error_message"] == f"no answer from {base_url.removeprefix('http://')} within 0.5 s"


async def test_old_health_log_rows_are_pruned(app, client, service_admin, researcher):
    from microservices.service_registry.models import HealthCheck

    created = await create(client, service_admin)
    session = app.state.test_session
    now = datetime.now(UTC)
    for days in (100, 91, 89, 1):
        session.add(HealthCheck(service_id=created["id"], status="healthy", checked_at=now - timedelta(days=days)))
    await session.flush()
    deleted = await registry.prune_health_log(session=session, older_than=now - timedelta(days=90))
    assert deleted == 2
    history = (await client.get(f"/services/{created['id']}/health/history", headers=researcher)).json()
    assert history["total"] == 2


async def test_replicas_take_turns_so_a_service_is_probed_once_per_cycle(databases, tokens, michigan, service_admin):
    import asyncio

    base_url, fake = michigan
    fake.down, fake.hang_s = "hang", 1.0
    settings = registry_settings(health_total_timeout_s=3, health_connect_timeout_s=3)
    first, second = build_app(settings), build_app(settings)
    async with app_client(first, tokens=tokens, rollback=False) as client, app_client(second, tokens=tokens):
        created = await create(client, service_admin, name="Taking turns", base_url=base_url)
        try:
            probes_before = fake.requests["GET /api/v2/server"]
            cycle = asyncio.create_task(first.state.health_checker.run_cycle())
            await asyncio.sleep(0.3)  # the first replica's cycle is waiting on the slow server
            assert await second.state.health_checker.run_cycle() == []
            assert second.state.health_checker.skipped_cycles == 1
            states = await cycle
            assert created["id"] in [state.service_id for state in states]
            assert fake.requests["GET /api/v2/server"] == probes_before + 1
            # With the first cycle over, the lock is free again for whichever replica comes next.
            assert await second.state.health_checker.run_cycle() is not None
            assert second.state.health_checker.skipped_cycles == 1
        finally:
            fake.down = None
            await client.delete(f"/services/{created['id']}", headers=service_admin)
