"""Identity over real HTTP: login at the user service, its JWKS verifying tokens elsewhere, instant lockout."""

import json
import uuid

import httpx
import pytest
import redis
from jose import jwt

from microservices.common.auth import TokenVerifier
from microservices.common.service_auth import ServiceTokenProvider, client_secret_for
from tests.harness import wait_until

pytestmark = pytest.mark.integration


async def admin_session(http: httpx.AsyncClient, platform) -> dict:
    response = await http.post(
        f"{platform.url('user_service')}/auth/login",
        json={"username": "admin", "password": platform.env["BOOTSTRAP_ADMIN_PASSWORD"]},
    )
    assert response.status_code == 200, response.text
    return response.json()


async def test_bootstrap_admin_logs_in_and_the_token_verifies_with_the_published_jwks(platform):
    async with httpx.AsyncClient(timeout=10) as http:
        body = await admin_session(http, platform)
        assert body["token_type"] == "bearer"
        assert body["user"]["username"] == "admin"
        assert body["user"]["email"] == "admin@example.org"
        assert body["user"]["roles"] == ["admin"]
        jwks_url = f"{platform.url('user_service')}/.well-known/jwks.json"
        jwks = (await http.get(jwks_url)).json()
        assert jwt.get_unverified_header(body["access_token"])["kid"] == jwks["keys"][0]["kid"]
        # A verifier that knows no key yet fetches the JWKS over HTTP, as every other service does.
        verifier = TokenVerifier(
            issuer="federated-imputation",
            audiences=["federated-imputation-api"],
            internal_audience="federated-imputation-internal",
            jwks_url=jwks_url,
            http=http,
        )
        principal = await verifier.verify(body["access_token"])
        assert principal.username == "admin"
        assert principal.roles == frozenset({"admin"})
        assert principal.user_id == body["user"]["id"]


async def test_a_deactivated_user_is_refused_at_once_by_another_service(platform):
    users = platform.url("user_service")
    files = f"{platform.url('file_manager')}/files"
    username = f"leaver-{uuid.uuid4().hex[:8]}"
    async with httpx.AsyncClient(timeout=10) as http:
        admin = {"Authorization": f"Bearer {(await admin_session(http, platform))['access_token']}"}
        created = await http.post(
            f"{users}/users",
            json={"username": username, "email": f"{username}@example.org", "password": "a long passphrase"},
            headers=admin,
        )
        assert created.status_code == 201, created.text
        login = await http.post(f"{users}/auth/login", json={"username": username, "password": "a long passphrase"})
        user_headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
        assert (await http.get(files, headers=user_headers)).status_code == 200

        deactivated = await http.post(f"{users}/users/{created.json()['id']}/deactivate/", headers=admin)
        assert deactivated.status_code == 200
        refused = await http.get(files, headers=user_headers)
        assert refused.status_code == 401
        assert refused.json()["error"] == "token_revoked"
        again = await http.post(f"{users}/auth/login", json={"username": username, "password": "a long passphrase"})
        assert again.status_code == 403
        assert again.json()["error"] == "account_inactive"


async def test_a_service_account_reads_permissions_and_a_user_cannot_introspect(platform):
    users = platform.url("user_service")
    async with httpx.AsyncClient(timeout=10) as http:
        admin_body = await admin_session(http, platform)
        provider = ServiceTokenProvider(
            http=http,
            token_url=f"{users}/auth/token",
            client_id="job_processor",
            client_secret=client_secret_for(platform.env["INTERNAL_CLIENT_SECRET"], "job_processor"),
        )
        permissions = await http.get(
            f"{users}/users/{admin_body['user']['id']}/permissions", headers=await provider.headers()
        )
        assert permissions.status_code == 200
        assert permissions.json() == {
            "user_id": admin_body["user"]["id"],
            "roles": ["admin"],
            "services": [],
            "all_services": True,
        }
        as_user = await http.post(
            f"{users}/auth/introspect",
            json={"token": admin_body["access_token"]},
            headers={"Authorization": f"Bearer {admin_body['access_token']}"},
        )
        assert as_user.status_code == 403
        wrong_secret = await http.post(
            f"{users}/auth/token",
            data={"grant_type": "client_credentials", "client_id": "job_processor", "client_secret": "guess"},
        )
        assert wrong_secret.status_code == 401
        assert wrong_secret.json()["error"] == "invalid_client"


async def test_a_personal_api_token_is_accepted_by_another_service_until_revoked(platform):
    users = platform.url("user_service")
    files = f"{platform.url('file_manager')}/files"
    async with httpx.AsyncClient(timeout=10) as http:
        admin = {"Authorization": f"Bearer {(await admin_session(http, platform))['access_token']}"}
        created = await http.post(f"{users}/tokens", json={"name": "integration"}, headers=admin)
        assert created.status_code == 201
        token = {"Authorization": f"Bearer {created.json()['token']}"}
        listed = await http.get(files, headers=token)
        assert listed.status_code == 200
        assert listed.json()["page"] == 1
        assert (await http.delete(f"{users}/tokens/{created.json()['id']}", headers=admin)).status_code == 204
        forged = await http.get(files, headers={"Authorization": "Bearer fip_not-a-real-token"})
        assert forged.status_code == 401
        assert forged.json()["error"] == "invalid_token"


async def test_logins_reach_the_event_bus_as_user_action_logged(platform):
    events = redis.Redis.from_url(f"{platform.redis.url}/3", decode_responses=True)
    try:
        async with httpx.AsyncClient(timeout=10) as http:
            body = await admin_session(http, platform)

        def login_event() -> dict | None:
            # Other tests log in on the same platform too: look for this admin's login.
            for _, fields in events.xrange("events:user.action.logged"):
                payload = json.loads(fields["payload"])
                if (
                    fields["producer"] == "user_service"
                    and payload["action"] == "auth.login"
                    and payload["user_id"] == body["user"]["id"]
                ):
                    return {**fields, "payload": payload}
            return None

        event = wait_until(login_event, timeout_s=15)
        assert event["topic"] == "user.action.logged"
        assert event["payload"]["user_id"] == body["user"]["id"]
        assert event["payload"]["actor"] == "admin"
        assert event["payload"]["success"] is True
    finally:
        events.close()
