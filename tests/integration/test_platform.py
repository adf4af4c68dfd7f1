"""The real platform: every process on its own port, talking over HTTP to real PostgreSQL and Redis."""

import httpx
import pytest

from microservices.common.settings import FASTAPI_SERVICES
from tests.harness import wait_until

pytestmark = pytest.mark.integration

EXPECTED_COMPONENTS = {
    *FASTAPI_SERVICES,
    "django",
    "postgresql",
    "redis",
    "celery_jobs",
    "celery_django",
}


def overall(platform) -> dict:
    response = httpx.get(f"{platform.url('monitoring')}/health/overall", timeout=10)
    assert response.status_code == 200
    return response.json()


@pytest.mark.parametrize("name", [*FASTAPI_SERVICES, "django"])
def test_every_component_is_healthy_on_its_own_port(platform, name):
    response = httpx.get(f"{platform.url(name)}/health", timeout=5)
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "healthy"
    assert body["service"] == name
    assert body["checks"]["redis"]["status"] == "healthy"
    if name != "gateway":
        assert body["checks"]["database"]["status"] == "healthy"


def test_overall_health_reports_every_component_healthy(platform):
    # Celery workers announce themselves a moment after they start.
    body = wait_until(lambda: (b := overall(platform))["overall_status"] == "healthy" and b, timeout_s=30)
    assert {c["service_name"] for c in body["services"]} == EXPECTED_COMPONENTS
    assert all(c["status"] == "healthy" for c in body["services"])
    assert body["active_alerts"] == []


def test_overall_health_reports_a_stopped_component_without_waiting_for_it(platform):
    platform.stop_component("notification")
    try:
        body = overall(platform)
        by_name = {c["service_name"]: c for c in body["services"]}
        assert by_name["notification"]["status"] == "unhealthy"
        assert by_name["notification"]["error"]
        assert by_name["gateway"]["status"] == "healthy"
        assert body["overall_status"] == "degraded"
    finally:
        platform.restart_component("notification")
    assert {c["service_name"]: c["status"] for c in overall(platform)["services"]}["notification"] == "healthy"


def test_a_stopped_critical_component_makes_the_platform_unhealthy(platform):
    platform.stop_component("user_service")
    try:
        assert overall(platform)["overall_status"] == "unhealthy"
    finally:
        platform.restart_component("user_service")


def test_celery_worker_consumes_the_jobs_queue(platform):
    from celery import Celery

    client = Celery(broker=f"{platform.redis.url}/1", backend=f"{platform.redis.url}/1")
    result = client.send_task("jobs.ping", queue="jobs")
    assert result.get(timeout=30) == "pong"


def test_a_stopped_worker_is_reported_once_its_heartbeat_lapses(platform):
    platform.stop_component("job-worker")
    try:
        # A clean shutdown removes the heartbeat at once.
        body = overall(platform)
        assert {c["service_name"]: c["status"] for c in body["services"]}["celery_jobs"] == "unhealthy"
    finally:
        platform.supervisor.start(platform.components["job-worker"])
    wait_until(
        lambda: {c["service_name"]: c["status"] for c in overall(platform)["services"]}["celery_jobs"] == "healthy",
        timeout_s=30,
    )
