"""The app factory: one error shape, request ids, metrics, health with 503 when a dependency is down."""

from typing import Annotated

import pytest
from fastapi import APIRouter, FastAPI, Query
from pydantic import BaseModel

from microservices.common.app import create_app
from microservices.common.errors import Conflict, RateLimited
from microservices.common.health import HealthCheck
from microservices.common.pagination import Page, PageParamsDep
from microservices.monitoring.config import Settings as MonitoringSettings
from tests.harness import app_client

router = APIRouter()


class Item(BaseModel):
    name: str
    size: int


@router.get("/conflict")
async def conflict() -> None:
    raise Conflict("A job with that name already exists.", code="job_exists")


@router.get("/limited")
async def limited() -> None:
    raise RateLimited("Slow down.", retry_after_s=7)


@router.get("/boom")
async def boom() -> None:
    raise RuntimeError("database password is hunter2")


@router.post("/items")
async def create_item(item: Item) -> Item:
    return item


@router.get("/items", response_model=Page[Item])
async def list_items(params: PageParamsDep, prefix: Annotated[str, Query(max_length=5)] = "") -> Page[Item]:
    return Page[Item](items=[], total=0, page=params.page, page_size=params.page_size)


def demo_app(**overrides: object) -> FastAPI:
    settings = MonitoringSettings(**overrides)  # type: ignore[arg-type]
    return create_app(settings=settings, title="demo", description="demo", routers=[router])


@pytest.fixture
async def client(databases):
    async with app_client(demo_app()) as c:
        yield c


async def test_app_error_renders_code_and_detail(client):
    response = await client.get("/conflict")
    assert response.status_code == 409
    assert response.json() == {"error": "job_exists", "detail": "A job with that name already exists."}


async def test_rate_limited_error_carries_retry_after(client):
    response = await client.get("/limited")
    assert response.status_code == 429
    assert response.headers["retry-after"] == "7"
    assert response.json()["error"] == "rate_limited"


async def test_unknown_route_is_json_404(client):
    response = await client.get("/nowhere")
    assert response.status_code == 404
    assert response.json() == {"error": "not_found", "detail": "Not Found"}


async def test_malformed_payload_is_422_naming_the_field(client):
    response = await client.post("/items", json={"name": "x", "size": "big"})
    assert response.status_code == 422
    body = response.json()
    assert body["error"] == "validation_error"
    assert body["detail"].startswith("Invalid request: size:")
    assert body["errors"][0]["loc"] == ["body", "size"]


async def test_unhandled_error_is_500_without_internals_and_with_request_id(client):
    response = await client.get("/boom", headers={"X-Request-ID": "req-abc-123"})
    assert response.status_code == 500
    body = response.json()
    assert body["error"] == "internal_error"
    assert "hunter2" not in response.text
    assert "req-abc-123" in body["detail"]


async def test_request_id_is_echoed_when_valid_and_replaced_when_not(client):
    kept = await client.get("/health", headers={"X-Request-ID": "abc-123.x:y"})
    assert kept.headers["x-request-id"] == "abc-123.x:y"
    replaced = await client.get("/health", headers={"X-Request-ID": "bad id\nwith newline"})
    assert replaced.headers["x-request-id"] != "bad id\nwith newline"
    assert len(replaced.headers["x-request-id"]) == 32


async def test_pagination_parameters_are_validated(client):
    ok = await client.get("/items?page=2&page_size=50")
    assert ok.json() == {"items": [], "total": 0, "page": 2, "page_size": 50}
    too_big = await client.get("/items?page_size=201")
    assert too_big.status_code == 422
    zero = await client.get("/items?page=0")
    assert zero.status_code == 422


async def test_metrics_count_requests_by_route_template(client):
    await client.get("/conflict")
    body = (await client.get("/metrics")).text
    assert 'http_requests_total{method="GET",route="/conflict",status="409"}' in body


async def test_metrics_count_invented_methods_as_other(client):
    def count(body: str, method: str) -> float:
        prefix = f'http_requests_total{{method="{method}",route="/conflict",status="405"}} '
        return next((float(line[len(prefix) :]) for line in body.splitlines() if line.startswith(prefix)), 0.0)

    before = (await client.get("/metrics")).text
    for method in ("BREW", "WHEN"):
        assert (await client.request(method, "/conflict")).status_code == 405
    after = (await client.get("/metrics")).text
    assert count(after, "OTHER") == count(before, "OTHER") + 2
    assert 'method="BREW"' not in after


async def test_health_is_200_with_every_check_when_dependencies_answer(client):
    response = await client.get("/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "healthy"
    assert body["service"] == "monitoring"
    assert body["version"] == "0.1.0"
    assert set(body["checks"]) == {"database", "redis"}
    assert body["checks"]["database"]["status"] == "healthy"
    assert body["checks"]["redis"]["status"] == "healthy"


async def test_health_is_503_naming_the_database_when_it_is_unreachable(databases):
    from microservices.common.localinfra import free_port

    app = demo_app(database_url=f"postgresql://postgres@127.0.0.1:{free_port()}/nothing")
    async with app_client(app, rollback=False) as client:
        response = await client.get("/health")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unhealthy"
    assert body["checks"]["database"]["status"] == "unhealthy"
    assert body["checks"]["database"]["error"]
    assert body["checks"]["redis"]["status"] == "healthy"


async def test_health_is_503_naming_redis_when_it_is_unreachable(databases):
    from microservices.common.localinfra import free_port

    app = demo_app(redis_url=f"redis://127.0.0.1:{free_port()}")
    async with app_client(app, rollback=False) as client:
        response = await client.get("/health")
    assert response.status_code == 503
    assert response.json()["checks"]["redis"]["status"] == "unhealthy"
    assert response.json()["checks"]["database"]["status"] == "healthy"


async def test_warning_check_degrades_but_keeps_200(databases):
    app = demo_app()

    async def smtp_missing() -> str:
        return "SMTP is not configured: e-mails are not sent"

    async with app_client(app, rollback=False) as client:
        app.state.health_checks.append(HealthCheck("smtp", smtp_missing, critical=False))
        response = await client.get("/health")
    assert response.status_code == 200
    assert response.json()["status"] == "degraded"
    assert response.json()["checks"]["smtp"] == {
        "status": "warning",
        "response_time_ms": response.json()["checks"]["smtp"]["response_time_ms"],
        "error": "SMTP is not configured: e-mails are not sent",
    }


async def test_a_page_number_past_the_limit_is_422_not_a_database_error(client):
    response = await client.get("/items?page=10000000000000000000")
    assert response.status_code == 422
    assert response.json()["errors"][0]["loc"] == ["query", "page"]
