"""The gateway's own endpoints: dashboard aggregation, merged OpenAPI, front end, WebSocket relay, revocation."""

import asyncio
import time
import uuid

import pytest
import websockets

from microservices.common.localinfra import free_port
from microservices.common.redis import CACHE_DB, make_redis
from microservices.gateway.config import Settings
from microservices.gateway.main import build_app
from microservices.gateway.service import merge_openapi
from tests.gateway.test_proxy import SERVICES, auth, gateway_settings
from tests.gateway.upstream import app as echo_app
from tests.gateway.upstream import serve_in_background
from tests.harness import app_client


@pytest.fixture(scope="module")
async def upstream_url():
    port = free_port()
    async with serve_in_background(echo_app, port):
        yield f"http://127.0.0.1:{port}"


async def test_dashboard_aggregates_and_reports_the_missing_parts(infra, tokens, upstream_url):
    dead = f"http://127.0.0.1:{free_port()}"
    settings = gateway_settings(upstream_url, notification_url=dead, aggregate_timeout_s=1.0)
    async with app_client(build_app(settings), tokens=tokens) as client:
        response = await client.get("/api/dashboard", headers=auth(tokens))
        legacy = await client.get("/api/dashboard/stats/", headers=auth(tokens))
        anonymous = await client.get("/api/dashboard")
    assert response.status_code == 200
    body = response.json()
    assert body["job_stats"] == {"total": 10, "completed": 6, "running": 2, "failed": 2, "success_rate": 75.0}
    assert body["service_stats"] == {"total": 3, "available": 2, "unavailable": 1, "healthy": 1}
    assert body["system_stats"] == {"uploads_today": 4}
    assert body["notifications"] is None
    assert body["unavailable"] == ["notification"]
    assert body["recent_jobs"] == [{"id": 1}, {"id": 2}, {"id": 3}, {"id": 4}, {"id": 5}]
    assert response.headers["x-ratelimit-limit"] == "100"
    assert legacy.status_code == 200
    assert legacy.json()["job_stats"] == body["job_stats"]
    assert anonymous.status_code == 401


async def test_dashboard_with_every_peer_down_is_still_an_answer(infra, tokens):
    dead = f"http://127.0.0.1:{free_port()}"
    async with app_client(build_app(gateway_settings(dead)), tokens=tokens) as client:
        body = (await client.get("/api/dashboard", headers=auth(tokens))).json()
    assert body["job_stats"] == {"total": 0, "completed": 0, "running": 0, "failed": 0, "success_rate": 0.0}
    assert body["unavailable"] == ["job_processor", "monitoring", "notification", "service_registry"]


async def test_merged_openapi_has_public_paths_as_the_gateway_serves_them(infra, tokens, upstream_url):
    async with app_client(build_app(gateway_settings(upstream_url)), tokens=tokens) as client:
        document = (await client.get("/api/openapi.json")).json()
        docs = await client.get("/api/docs")
    assert "/api/services" in document["paths"]
    assert "/api/monitoring/services" in document["paths"]
    assert "/api/dashboard" in document["paths"]
    assert "/api/internal/sync" not in document["paths"]
    assert not any(p.startswith("/health") for p in document["paths"])
    assert document["paths"]["/api/services"]["get"]["tags"] == ["service registry"]
    assert docs.status_code == 200
    assert "/api/openapi.json" in docs.text


def test_merge_keeps_both_of_two_different_schemas_of_one_name():
    page_a = {"type": "object", "properties": {"a": {"type": "integer"}}}
    page_b = {"type": "object", "properties": {"b": {"type": "integer"}}}
    ref = {"$ref": "#/components/schemas/Page"}
    ok = {"200": {"description": "ok", "content": {"application/json": {"schema": ref}}}}
    documents = {
        "job_processor": {"paths": {"/jobs": {"get": {"responses": ok}}}, "components": {"schemas": {"Page": page_a}}},
        "file_manager": {"paths": {"/files": {"get": {"responses": ok}}}, "components": {"schemas": {"Page": page_b}}},
    }
    merged = merge_openapi(own={"openapi": "3.1.0", "info": {}, "paths": {}}, documents=documents)
    assert merged["components"]["schemas"] == {"Page": page_a, "file_manager__Page": page_b}
    schema_of = lambda p: merged["paths"][p]["get"]["responses"]["200"]["content"]["application/json"]["schema"]  # noqa: E731
    assert schema_of("/api/jobs") == {"$ref": "#/components/schemas/Page"}
    assert schema_of("/api/files") == {"$ref": "#/components/schemas/file_manager__Page"}


async def test_the_front_end_is_served_with_spa_fallback(infra, tokens, upstream_url, tmp_path):
    (tmp_path / "index.html").write_text("<html>app</html>")
    (tmp_path / "assets").mkdir()
    (tmp_path / "assets" / "app.js").write_text("console.log(1)")
    (tmp_path.parent / "secret.txt").write_text("no")
    async with app_client(build_app(gateway_settings(upstream_url, frontend_dir=tmp_path)), tokens=tokens) as client:
        root = await client.get("/")
        asset = await client.get("/assets/app.js")
        deep_link = await client.get("/jobs/12")
        escape = await client.get("/..%2Fsecret.txt")
        unknown_api = await client.get("/api/nothing-here")
        health = await client.get("/health")
    assert (root.status_code, root.text) == (200, "<html>app</html>")
    assert (asset.status_code, asset.text) == (200, "console.log(1)")
    assert "javascript" in asset.headers["content-type"]
    assert (deep_link.status_code, deep_link.text) == (200, "<html>app</html>")
    assert escape.text == "<html>app</html>"
    assert unknown_api.status_code == 404
    assert unknown_api.json()["error"] == "not_found"
    assert health.json()["service"] == "gateway"


async def test_without_a_front_end_the_root_is_not_found(infra, tokens, upstream_url):
    async with app_client(build_app(gateway_settings(upstream_url)), tokens=tokens) as client:
        assert (await client.get("/")).status_code == 404


async def test_a_token_revoked_after_it_was_verified_is_refused_after_the_next_report(infra, tokens, upstream_url):
    # The services behind the gateway refuse a revoked token at once themselves (the stub upstream here does not);
    # the gateway learns of it with its next rate-limit report, 50 ms later at most.
    subject = uuid.uuid4().hex
    headers = tokens.headers(sub=subject)
    redis = make_redis(Settings().redis_db_url(CACHE_DB))
    try:
        async with app_client(build_app(gateway_settings(upstream_url)), tokens=tokens) as client:
            assert (await client.get("/api/jobs", headers=headers)).status_code == 200
            await redis.set(f"auth:revoked_before:{subject}", int(time.time()) + 1, ex=60)
            started = time.monotonic()
            while (refused := await client.get("/api/jobs", headers=headers)).status_code == 200:
                assert time.monotonic() - started < 1.0, "the gateway never learnt of the revocation"
                await asyncio.sleep(0.02)
    finally:
        await redis.aclose()
    assert refused.status_code == 401
    assert refused.json()["error"] == "token_revoked"


async def test_websocket_messages_are_relayed_both_ways(infra, tokens, upstream_url):
    app = build_app(gateway_settings(upstream_url))
    port = free_port()
    async with serve_in_background(app, port, lifespan="on"):
        url = f"ws://127.0.0.1:{port}/ws/notifications?token=abc"
        async with websockets.connect(url, additional_headers={"Authorization": "Bearer xyz"}) as ws:
            assert await ws.recv() == "hello Bearer xyz abc"
            await ws.send("ping")
            assert await ws.recv() == "echo:ping"
        with pytest.raises(websockets.InvalidStatus) as refused:
            await websockets.connect(f"ws://127.0.0.1:{port}/ws/notifications?token=refuse")
        assert refused.value.response.status_code == 403


async def test_websocket_to_a_stopped_notification_service_is_closed_try_again_later(infra, tokens, upstream_url):
    dead = f"http://127.0.0.1:{free_port()}"
    port = free_port()
    async with (
        serve_in_background(build_app(gateway_settings(upstream_url, notification_url=dead)), port, lifespan="on"),
        websockets.connect(f"ws://127.0.0.1:{port}/ws/notifications") as ws,
    ):
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await ws.recv()
    assert closed.value.rcvd.code == 1013


assert SERVICES  # the peers every gateway here is pointed at
