"""The proxy path in-process against a real upstream on a local port: routing, tokens, limits, errors, streaming."""

import base64
import json
import uuid

import pytest

from microservices.common.localinfra import free_port
from microservices.gateway.config import Settings
from microservices.gateway.main import build_app
from tests.gateway.upstream import app as echo_app
from tests.gateway.upstream import serve_in_background
from tests.harness import TokenFactory, app_client

SERVICES = ("user_service", "service_registry", "job_processor", "file_manager", "notification", "monitoring")


@pytest.fixture(scope="module")
async def upstream_url():
    port = free_port()
    async with serve_in_background(echo_app, port):
        yield f"http://127.0.0.1:{port}"


def gateway_settings(upstream_url: str, **overrides) -> Settings:
    urls = {f"{name}_url": upstream_url for name in SERVICES}
    options = {**urls, "rate_limit_default": 100, "access_log": False, **overrides}
    return Settings(**options)


@pytest.fixture
async def gateway(infra, tokens, upstream_url):
    async with app_client(build_app(gateway_settings(upstream_url)), tokens=tokens) as client:
        yield client


def auth(tokens: TokenFactory, **kwargs) -> dict[str, str]:
    return tokens.headers(sub=uuid.uuid4().hex, **kwargs)


async def test_a_request_reaches_its_owner_with_api_stripped_and_headers_passed(gateway, tokens):
    headers = {**auth(tokens), "X-Request-ID": "req-123", "X-Custom": "kept", "X-Forwarded-For": "6.6.6.6"}
    response = await gateway.get("/api/services/h3africa/health/?verbose=1&x=%20y", headers=headers)
    assert response.status_code == 200
    echoed = response.json()
    assert echoed["method"] == "GET"
    assert echoed["path"] == "/services/h3africa/health"
    assert echoed["query"] == "verbose=1&x=%20y"
    assert echoed["headers"]["authorization"] == headers["Authorization"]
    assert echoed["headers"]["x-request-id"] == "req-123"
    assert echoed["headers"]["x-custom"] == "kept"
    assert echoed["headers"]["x-forwarded-for"] == "127.0.0.1"
    assert echoed["headers"]["x-forwarded-proto"] == "http"
    # Passed as the caller sent it: the gateway adds no encoding of its own, so bodies pass through untouched.
    assert echoed["headers"]["accept-encoding"] == response.request.headers["accept-encoding"]
    assert echoed["headers"]["user-agent"] == response.request.headers["user-agent"]
    assert response.headers["x-request-id"] == "req-123"
    assert response.headers["x-upstream"] == "echo"
    assert response.headers["set-cookie"] == "upstream=1"
    assert response.headers["x-ratelimit-limit"] == "100"
    assert response.headers["x-ratelimit-remaining"] == "99"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"


async def test_the_raw_path_is_forwarded_without_decoding(gateway, tokens):
    response = await gateway.get("/api/files/a%2Fb%20c", headers=auth(tokens))
    assert response.json()["raw_path"] == "/files/a%2Fb%20c"


async def test_job_files_go_to_the_file_manager_and_monitoring_loses_its_prefix(gateway, tokens):
    assert (await gateway.get("/api/jobs/7/files", headers=auth(tokens))).json()["path"] == "/jobs/7/files"
    assert (await gateway.get("/api/monitoring/health/overall", headers=auth(tokens))).json()["path"] == (
        "/health/overall"
    )


async def test_a_request_body_is_forwarded_whole(gateway, tokens):
    payload = b"0123456789" * 50_000
    response = await gateway.post("/api/jobs", content=payload, headers=auth(tokens))
    assert response.json()["body_length"] == 500_000
    upload = await gateway.post("/api/files/upload", content=payload, headers=auth(tokens))
    assert upload.json()["received"] == 500_000


async def test_a_large_download_is_streamed_through(gateway, tokens):
    response = await gateway.get("/api/files/1/download?size=3000000", headers=auth(tokens))
    assert response.status_code == 200
    assert len(response.content) == 3_000_000
    assert response.headers["content-type"] == "application/octet-stream"


async def test_an_upstream_redirect_points_back_through_the_gateway(gateway, tokens):
    response = await gateway.get("/api/jobs/redirect", headers=auth(tokens))
    assert response.status_code == 307
    assert response.headers["location"] == "/api/jobs/elsewhere"


async def test_public_routes_need_no_token_and_the_rest_do(gateway):
    assert (await gateway.post("/api/auth/login", json={"username": "a"})).json()["path"] == "/auth/login"
    assert (await gateway.get("/api/.well-known/jwks.json")).status_code == 200
    response = await gateway.get("/api/jobs")
    assert response.status_code == 401
    assert response.json() == {
        "error": "not_authenticated",
        "detail": "Send a bearer token in the Authorization header.",
    }
    assert response.headers["www-authenticate"] == "Bearer"


async def test_a_stale_token_does_not_block_logging_in(gateway, tokens):
    response = await gateway.post(
        "/api/auth/login", json={}, headers={"Authorization": f"Bearer {tokens.token(expires_in_s=-5)}"}
    )
    assert response.status_code == 200


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def alg_none(tokens: TokenFactory) -> str:
    payload = tokens.token(roles=["admin"]).split(".")[1]
    return f"{_b64({'alg': 'none', 'typ': 'JWT', 'kid': tokens.kid})}.{payload}."


@pytest.mark.parametrize(
    ("make", "code"),
    [
        (lambda t: t.token(expires_in_s=-10), "token_expired"),
        (lambda t: t.token(audience="another-platform"), "invalid_audience"),
        (lambda t: TokenFactory().token(), "invalid_token"),
        (alg_none, "invalid_token"),
        (lambda t: "a.b.c", "invalid_token"),
    ],
)
async def test_bad_tokens_are_refused_before_any_upstream(gateway, tokens, make, code):
    response = await gateway.get("/api/jobs", headers={"Authorization": f"Bearer {make(tokens)}"})
    assert response.status_code == 401
    assert response.json()["error"] == code


async def test_an_upstream_that_is_down_gives_503_naming_it_then_the_circuit_opens(infra, tokens, upstream_url):
    dead = f"http://127.0.0.1:{free_port()}"
    settings = gateway_settings(upstream_url, notification_url=dead, breaker_failure_threshold=2, breaker_cooldown_s=30)
    async with app_client(build_app(settings), tokens=tokens) as client:
        headers = auth(tokens)
        for _ in range(2):
            response = await client.get("/api/notifications", headers=headers)
            assert response.status_code == 503
            assert response.json() == {
                "error": "service_unavailable",
                "detail": "The notification service is unavailable.",
                "service": "notification",
            }
        paused = await client.get("/api/notifications", headers=headers)
        assert paused.status_code == 503
        assert (
            paused.json()["detail"] == "The notification service is unavailable; calls to it are paused for a moment."
        )
        assert paused.headers["retry-after"] == "30"
        # Other upstreams are not affected.
        assert (await client.get("/api/jobs", headers=headers)).status_code == 200


async def test_a_slow_upstream_gives_504(infra, tokens, upstream_url):
    settings = gateway_settings(upstream_url, upstream_read_timeout_s=0.3)
    async with app_client(build_app(settings), tokens=tokens) as client:
        response = await client.get("/api/jobs/slow?seconds=2", headers=auth(tokens))
    assert response.status_code == 504
    assert response.json() == {
        "error": "upstream_timeout",
        "detail": "The job processor did not answer within 0.3 s.",
        "service": "job_processor",
    }


async def test_an_upstream_that_stalls_after_its_headers_gives_504(infra, tokens, upstream_url):
    settings = gateway_settings(upstream_url, upstream_read_timeout_s=0.3)
    async with app_client(build_app(settings), tokens=tokens) as client:
        response = await client.get("/api/jobs/stall?seconds=2", headers=auth(tokens))
    assert response.status_code == 504
    assert response.json() == {
        "error": "upstream_timeout",
        "detail": "The job processor did not finish its answer within 0.3 s.",
        "service": "job_processor",
    }


async def test_the_rate_limit_refuses_with_429_and_its_headers(infra, tokens, upstream_url):
    settings = gateway_settings(upstream_url, rate_limit_default=2, rate_limit_window_s=120)
    async with app_client(build_app(settings), tokens=tokens) as client:
        headers = auth(tokens)
        first = await client.get("/api/jobs", headers=headers)
        second = await client.get("/api/jobs", headers=headers)
        refused = await client.get("/api/jobs", headers=headers)
        admin = await client.get("/api/jobs", headers=auth(tokens, roles=["admin"]))
    assert [first.headers["x-ratelimit-remaining"], second.headers["x-ratelimit-remaining"]] == ["1", "0"]
    assert refused.status_code == 429
    assert refused.json() == {"error": "rate_limited", "detail": "Too many requests: the limit is 2 per 120 s."}
    assert refused.headers["retry-after"] == "120"
    assert refused.headers["x-ratelimit-limit"] == "2"
    assert refused.headers["x-ratelimit-remaining"] == "0"
    assert refused.headers["x-ratelimit-reset"] == "120"
    assert admin.headers["x-ratelimit-limit"] == "10000"


async def test_cors_allows_only_the_configured_origins(infra, tokens, upstream_url):
    settings = gateway_settings(upstream_url, cors_origins=["https://ui.example.org"])
    async with app_client(build_app(settings), tokens=tokens) as client:
        preflight = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization"}
        allowed = await client.options("/api/jobs", headers={"Origin": "https://ui.example.org", **preflight})
        refused = await client.options("/api/jobs", headers={"Origin": "https://evil.example", **preflight})
        simple = await client.get("/api/jobs", headers={"Origin": "https://ui.example.org", **auth(tokens)})
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == "https://ui.example.org"
    assert refused.status_code == 400
    assert "access-control-allow-origin" not in refused.headers
    assert simple.headers["access-control-allow-origin"] == "https://ui.example.org"
