"""The gateway over real HTTP on the real platform: identity through it, refused tokens, rate limits, a stopped
upstream, and a 200 MB upload streamed through without the gateway's memory growing.
"""

from __future__ import annotations

import base64
import hashlib
import json
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest
from jose import jwt

from microservices.common.localinfra import free_port, wait_for_port
from microservices.common.processes import Component
from tests.harness import TokenFactory, wait_until

pytestmark = pytest.mark.integration

PASSWORD = "a long passphrase for tests"


def api(platform) -> str:
    return f"{platform.url('gateway')}/api"


def register_and_login(platform) -> dict:
    username = f"gw-{uuid.uuid4().hex[:10]}"
    registered = httpx.post(
        f"{api(platform)}/auth/register/",
        json={"username": username, "email": f"{username}@example.org", "password": PASSWORD},
        timeout=15,
    )
    assert registered.status_code == 201, registered.text
    assert registered.json()["username"] == username
    login = httpx.post(f"{api(platform)}/auth/login", json={"username": username, "password": PASSWORD}, timeout=15)
    assert login.status_code == 200, login.text
    return login.json()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_register_login_user_and_refresh_rotation_through_the_gateway(platform):
    session = register_and_login(platform)
    assert session["token_type"] == "bearer"
    assert session["expires_in"] == 900
    me = httpx.get(f"{api(platform)}/auth/user", headers=bearer(session["access_token"]), timeout=10)
    assert me.status_code == 200
    assert me.json()["username"] == session["user"]["username"]

    rotated = httpx.post(f"{api(platform)}/auth/refresh", json={"refresh_token": session["refresh_token"]}, timeout=10)
    assert rotated.status_code == 200
    assert rotated.json()["refresh_token"] != session["refresh_token"]
    reused = httpx.post(f"{api(platform)}/auth/refresh", json={"refresh_token": session["refresh_token"]}, timeout=10)
    assert reused.status_code == 401
    assert reused.json()["error"] == "refresh_token_reused"


def test_request_id_is_kept_end_to_end(platform):
    session = register_and_login(platform)
    headers = {**bearer(session["access_token"]), "X-Request-ID": "trace-me-42"}
    response = httpx.get(f"{api(platform)}/auth/user", headers=headers, timeout=10)
    assert response.status_code == 200
    assert response.headers["x-request-id"] == "trace-me-42"
    assert response.headers["x-ratelimit-limit"] == "1000"


def real_signer(platform) -> tuple[str, str]:
    """The user service's own signing key (generated under the test VAR_DIR) and its key id."""
    pem = (Path(platform.env["VAR_DIR"]) / "jwt-private.pem").read_text()
    jwks = httpx.get(f"{api(platform)}/.well-known/jwks.json", timeout=10).json()
    return pem, jwks["keys"][0]["kid"]


def signed(pem: str, kid: str, **overrides) -> str:
    now = int(time.time())
    claims = {
        "sub": "1",
        "username": "admin",
        "roles": ["admin"],
        "iat": now,
        "exp": now + 600,
        "iss": "federated-imputation",
        "aud": "federated-imputation-api",
        "jti": uuid.uuid4().hex,
        **overrides,
    }
    return str(jwt.encode(claims, pem, algorithm="RS256", headers={"kid": kid}))


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def test_forged_expired_alg_none_and_wrong_audience_tokens_are_refused(platform):
    pem, kid = real_signer(platform)
    genuine = signed(pem, kid)
    payload = genuine.split(".")[1]
    cases = {
        "forged": (TokenFactory().token(sub="1", roles=["admin"]), "invalid_token"),
        "forged with the real key id": (TokenFactory().token(headers={"kid": kid}), "invalid_token"),
        "expired": (signed(pem, kid, iat=int(time.time()) - 1000, exp=int(time.time()) - 60), "token_expired"),
        "alg none": (f"{_b64({'alg': 'none', 'typ': 'JWT', 'kid': kid})}.{payload}.", "invalid_token"),
        "wrong audience": (signed(pem, kid, aud="some-other-api"), "invalid_audience"),
        "unknown API token": ("fip_" + uuid.uuid4().hex, "invalid_token"),
    }
    for name, (token, code) in cases.items():
        response = httpx.get(f"{api(platform)}/users", headers=bearer(token), timeout=10)
        assert (name, response.status_code, response.json()["error"]) == (name, 401, code)
        assert response.headers["www-authenticate"] == "Bearer"
    assert httpx.get(f"{api(platform)}/auth/user", headers=bearer(genuine), timeout=10).status_code == 200


def test_an_api_token_works_through_the_gateway_and_stops_when_revoked(platform):
    session = register_and_login(platform)
    created = httpx.post(
        f"{api(platform)}/tokens", json={"name": "script"}, headers=bearer(session["access_token"]), timeout=10
    )
    assert created.status_code == 201, created.text
    api_token = created.json()["token"]
    assert api_token.startswith("fip_")
    me = httpx.get(f"{api(platform)}/auth/user", headers=bearer(api_token), timeout=10)
    assert me.status_code == 200
    assert me.json()["username"] == session["user"]["username"]

    revoked = httpx.delete(
        f"{api(platform)}/tokens/{created.json()['id']}", headers=bearer(session["access_token"]), timeout=10
    )
    assert revoked.status_code == 204
    # The gateway keeps an introspection answer for at most GATEWAY_INTROSPECTION_CACHE_S (5 s).
    refused = wait_until(
        lambda: (
            (r := httpx.get(f"{api(platform)}/users", headers=bearer(api_token), timeout=10)).status_code == 401 and r
        ),
        timeout_s=15,
    )
    assert refused.json()["error"] == "invalid_token"


def test_a_stopped_upstream_gives_503_naming_it_and_recovers(platform):
    session = register_and_login(platform)
    url = f"{api(platform)}/notifications"
    platform.stop_component("notification")
    try:
        response = httpx.get(url, headers=bearer(session["access_token"]), timeout=10)
    finally:
        platform.restart_component("notification")
    assert response.status_code == 503
    assert response.json() == {
        "error": "service_unavailable",
        "detail": "The notification service is unavailable.",
        "service": "notification",
    }
    wait_until(
        lambda: httpx.get(url, headers=bearer(session["access_token"]), timeout=10).status_code == 200, timeout_s=20
    )


def test_the_dashboard_answers_with_every_part(platform):
    session = register_and_login(platform)
    response = httpx.get(f"{api(platform)}/dashboard/stats", headers=bearer(session["access_token"]), timeout=15)
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"job_stats", "service_stats", "recent_jobs", "notifications", "system_stats", "unavailable"}
    assert set(body["job_stats"]) == {"total", "completed", "running", "failed", "success_rate"}


@pytest.fixture(scope="module")
def own_gateway(platform, tmp_path_factory) -> Iterator[dict]:
    """A second gateway against the platform's peers with a small rate limit, whose file manager is a tiny
    upstream that streams uploads to disk (tests/gateway/upstream.py)."""
    upload_dir = tmp_path_factory.mktemp("uploads")
    upstream_port, gateway_port = free_port(), free_port()
    upstream = Component("upload-upstream", (sys.executable, "-m", "tests.gateway.upstream", str(upstream_port),
                         str(upload_dir)))  # fmt: skip
    gateway = Component(
        "small-limit-gateway",
        (sys.executable, "-m", "microservices.gateway"),
        port=gateway_port,
        env={
            "GATEWAY_PORT": str(gateway_port),
            "FILE_MANAGER_URL": f"http://127.0.0.1:{upstream_port}",
            "GATEWAY_RATE_LIMIT_DEFAULT": "3",
            "GATEWAY_RATE_LIMIT_WINDOW_S": "2",
            "GATEWAY_ACCESS_LOG": "false",
        },
    )
    process = platform.supervisor.start(upstream)
    wait_for_port(upstream_port, timeout_s=30)
    platform.supervisor.start(gateway)
    platform.supervisor.wait_healthy([gateway], timeout_s=60)
    try:
        yield {"url": f"http://127.0.0.1:{gateway_port}", "pid": platform.supervisor.processes[gateway.name].pid}
    finally:
        platform.supervisor.stop(gateway.name)
        platform.supervisor.stop(upstream.name)
        assert process.poll() is not None


def test_rate_limit_refuses_with_429_and_headers_then_recovers(own_gateway):
    url = f"{own_gateway['url']}/api/.well-known/jwks.json"
    # A window boundary may fall inside the burst: start on a fresh one.
    wait_until(lambda: httpx.get(url, timeout=10).headers.get("x-ratelimit-remaining") == "2", timeout_s=10)
    answers = [httpx.get(url, timeout=10) for _ in range(3)]
    assert [r.status_code for r in answers] == [200, 200, 429]
    assert [r.headers["x-ratelimit-remaining"] for r in answers] == ["1", "0", "0"]
    refused = answers[-1]
    assert refused.json() == {"error": "rate_limited", "detail": "Too many requests: the limit is 3 per 2 s."}
    assert refused.headers["x-ratelimit-limit"] == "3"
    assert refused.headers["retry-after"] in {"1", "2"}
    assert refused.headers["x-ratelimit-reset"] == refused.headers["retry-after"]
    recovered = wait_until(lambda: (r := httpx.get(url, timeout=10)).status_code == 200 and r, timeout_s=5)
    assert recovered.headers["x-ratelimit-remaining"] == "2"


def test_a_200_mb_upload_streams_through_without_the_gateway_growing(platform, own_gateway):
    login = httpx.post(
        f"{api(platform)}/auth/login",
        json={"username": "admin", "password": platform.env["BOOTSTRAP_ADMIN_PASSWORD"]},
        timeout=15,
    )
    token = login.json()["access_token"]
    gateway = psutil.Process(own_gateway["pid"])
    # Warm up the gateway's paths (token check, pools) so that the baseline is its steady state.
    assert httpx.get(f"{own_gateway['url']}/api/files/warm", headers=bearer(token), timeout=10).status_code == 200
    baseline = gateway.memory_info().rss
    peak = baseline
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, gateway.memory_info().rss)
            done.wait(0.02)

    block = hashlib.sha256(b"seed").digest() * (1024 * 1024 // 32)
    blocks = 200
    digest = hashlib.sha256()
    for _ in range(blocks):
        digest.update(block)

    def body() -> Iterator[bytes]:
        for _ in range(blocks):
            yield block

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        response = httpx.post(
            f"{own_gateway['url']}/api/files/upload",
            content=body(),
            headers={**bearer(token), "Content-Type": "application/octet-stream"},
            timeout=120,
        )
    finally:
        done.set()
        sampler.join()
    assert response.status_code == 200, response.text
    assert response.json() == {"received": 200 * 1024 * 1024, "sha256": digest.hexdigest()}
    growth_mb = (peak - baseline) / 1024 / 1024
    print(f"gateway RSS {baseline / 2**20:.1f} MB before, peak {peak / 2**20:.1f} MB (+{growth_mb:.1f} MB)")
    assert growth_mb < 50
