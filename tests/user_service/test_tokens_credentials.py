"""Personal API tokens and their introspection, per-user external credentials, the audit log, the first admin."""

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from microservices.user_service import service
from microservices.user_service.models import ApiToken, ServiceCredential, User
from microservices.user_service.security import hash_secret
from tests.user_service.conftest import bearer, login, make_settings, make_user, service_headers, user_headers


async def test_api_token_is_shown_once_stored_hashed_and_works_as_a_bearer(app, client):
    user = await make_user(app, username="scripter")
    headers = bearer((await login(client, "scripter"))["access_token"])
    response = await client.post("/tokens/", json={"name": "nightly", "expires_in_days": 30}, headers=headers)
    assert response.status_code == 201
    created = response.json()
    secret = created["token"]
    assert secret.startswith("fip_")
    assert created["token_prefix"] == secret[:12]
    assert created["name"] == "nightly"
    assert created["last_used_at"] is None
    expires_at = datetime.fromisoformat(created["expires_at"])
    assert timedelta(days=29, hours=23) < expires_at - datetime.now(UTC) <= timedelta(days=30)
    stored = await app.state.test_session.get(ApiToken, created["id"])
    assert stored.token_hash == hash_secret(secret)
    assert secret not in str(stored.__dict__)

    me = await client.get("/auth/user", headers=bearer(secret))
    assert me.status_code == 200
    assert me.json()["id"] == user.id
    listed = await client.get("/tokens", headers=headers)
    assert listed.json()["total"] == 1
    item = listed.json()["items"][0]
    assert "token" not in item
    assert item["last_used_at"] is not None


async def test_revoked_and_expired_api_tokens_stop_working(app, client):
    headers = await user_headers(app, client, "revoker")
    first = (await client.post("/tokens", json={"name": "one"}, headers=headers)).json()
    second = (await client.post("/tokens", json={"name": "two"}, headers=headers)).json()
    assert first["expires_at"] is None
    assert (await client.delete(f"/tokens/{first['id']}/", headers=headers)).status_code == 204
    refused = await client.get("/auth/user", headers=bearer(first["token"]))
    assert refused.status_code == 401
    assert refused.json()["error"] == "invalid_token"
    row = await app.state.test_session.get(ApiToken, second["id"])
    row.expires_at = datetime.now(UTC) - timedelta(seconds=1)
    await app.state.test_session.flush()
    assert (await client.get("/auth/user", headers=bearer(second["token"]))).status_code == 401
    assert (await client.get("/auth/user", headers=bearer("fip_made-up"))).status_code == 401


async def test_a_user_cannot_revoke_someone_elses_token(app, client):
    owner = await user_headers(app, client, "owner-t")
    other = await user_headers(app, client, "other-t")
    token_id = (await client.post("/tokens", json={"name": "mine"}, headers=owner)).json()["id"]
    response = await client.delete(f"/tokens/{token_id}", headers=other)
    assert response.status_code == 404
    assert response.json() == {"error": "token_not_found", "detail": f"There is no API token {token_id}."}
    assert (await client.get("/tokens", headers=other)).json()["total"] == 0


async def test_introspection_is_for_services_and_tells_live_from_dead_tokens(app, client):
    user = await make_user(app, username="introspected")
    headers = bearer((await login(client, "introspected"))["access_token"])
    created = (await client.post("/tokens", json={"name": "ci"}, headers=headers)).json()
    as_user = await client.post("/auth/introspect", json={"token": created["token"]}, headers=headers)
    assert as_user.status_code == 403
    service = await service_headers(client, "gateway")
    live = await client.post("/auth/introspect", json={"token": created["token"]}, headers=service)
    assert live.status_code == 200
    assert live.json() == {
        "active": True,
        "sub": str(user.id),
        "username": "introspected",
        "roles": ["researcher"],
        "token_id": f"api:{created['id']}",
    }
    jwt_live = await client.post("/auth/introspect", json={"token": headers["Authorization"][7:]}, headers=service)
    assert jwt_live.json()["active"] is True
    assert jwt_live.json()["sub"] == str(user.id)
    await client.delete(f"/tokens/{created['id']}", headers=headers)
    dead = await client.post("/auth/introspect", json={"token": created["token"]}, headers=service)
    assert dead.json() == {"active": False}
    garbage = await client.post("/auth/introspect", json={"token": "garbage"}, headers=service)
    assert garbage.json() == {"active": False}


async def test_credentials_are_stored_encrypted_and_never_echoed(app, client):
    user = await make_user(app, username="michigan-user")
    headers = bearer((await login(client, "michigan-user"))["access_token"])
    soon = datetime.now(UTC) + timedelta(days=3, hours=1)
    response = await client.post(
        "/users/me/service-credentials/",
        json={"service_id": 4, "api_token": "mich-secret-123", "expires_at": soon.isoformat()},
        headers=headers,
    )
    assert response.status_code == 201
    assert "mich-secret-123" not in response.text
    body = response.json()
    assert (body["service_id"], body["has_token"], body["expires_soon"], body["expired"]) == (4, True, True, False)
    assert body["warning"] == "This token expires in 3 days; renew it soon."
    stored = await app.state.test_session.scalar(select(ServiceCredential).where(ServiceCredential.user_id == user.id))
    assert b"mich-secret-123" not in stored.encrypted_token
    assert app.state.fernet.decrypt(stored.encrypted_token) == b"mich-secret-123"

    await client.post("/users/me/service-credentials", json={"service_id": 2, "token": "wes-bearer"}, headers=headers)
    listed = await client.get("/users/me/service-credentials", headers=headers)
    assert listed.status_code == 200
    assert "wes-bearer" not in listed.text
    assert listed.json()["total"] == 2
    assert [(c["service_id"], c["expires_soon"], c["warning"]) for c in listed.json()["items"]] == [
        (2, False, None),
        (4, True, "This token expires in 3 days; renew it soon."),
    ]
    # Replacing keeps one credential per service.
    far = datetime.now(UTC) + timedelta(days=90)
    await client.post(
        "/users/me/service-credentials",
        json={"service_id": 4, "token": "mich-new", "expires_at": far.isoformat()},
        headers=headers,
    )
    listed = (await client.get("/users/me/service-credentials", headers=headers)).json()["items"]
    assert [(c["service_id"], c["expires_soon"]) for c in listed] == [(2, False), (4, False)]

    internal = await client.get(f"/internal/users/{user.id}/credentials/4", headers=await service_headers(client))
    assert internal.status_code == 200
    assert internal.json()["token"] == "mich-new"
    assert datetime.fromisoformat(internal.json()["expires_at"]) == far
    as_user = await client.get(f"/internal/users/{user.id}/credentials/4", headers=headers)
    assert as_user.status_code == 403
    as_gateway = await client.get(
        f"/internal/users/{user.id}/credentials/4", headers=await service_headers(client, "gateway")
    )
    assert as_gateway.status_code == 403
    assert as_gateway.json() == {
        "error": "forbidden",
        "detail": "Users' credentials are handed to the job processor only.",
    }

    assert (await client.delete("/users/me/service-credentials/4", headers=headers)).status_code == 204
    missing = await client.get(f"/internal/users/{user.id}/credentials/4", headers=await service_headers(client))
    assert missing.status_code == 404
    assert missing.json()["error"] == "credential_not_found"
    again = await client.delete("/users/me/service-credentials/4", headers=headers)
    assert again.status_code == 404


async def test_expired_credential_is_flagged(app, client):
    headers = await user_headers(app, client, "expired-cred")
    past = datetime.now(UTC) - timedelta(days=1)
    response = await client.post(
        "/users/me/service-credentials",
        json={"service_id": 5, "token": "old", "expires_at": past.isoformat()},
        headers=headers,
    )
    body = response.json()
    assert (body["expired"], body["expires_soon"], body["warning"]) == (
        True,
        False,
        "This token has expired; store a new one.",
    )
    malformed = await client.post("/users/me/service-credentials", json={"service_id": 5}, headers=headers)
    assert malformed.status_code == 422


async def test_audit_log_is_for_admins_with_filters(app, client):
    admin = await user_headers(app, client, "auditor", roles=("admin",))
    user = await make_user(app, username="audited")
    await client.post("/auth/login", json={"username": "audited", "password": "wrong password"})
    await login(client, "audited")
    await client.post(f"/users/{user.id}/deactivate", headers=admin)
    everything = await client.get("/audit", params={"user_id": user.id}, headers=admin)
    assert everything.status_code == 200
    assert [(e["action"], e["success"]) for e in everything.json()["items"]] == [
        ("user.deactivate", True),
        ("auth.login", True),
        ("auth.login_failed", False),
    ]
    auth_only = await client.get("/audit", params={"user_id": user.id, "action": "auth."}, headers=admin)
    assert [e["action"] for e in auth_only.json()["items"]] == ["auth.login", "auth.login_failed"]
    failures = await client.get("/audit", params={"user_id": user.id, "success": "false"}, headers=admin)
    assert [e["action"] for e in failures.json()["items"]] == ["auth.login_failed"]
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    none_yet = await client.get("/audit", params={"since": future}, headers=admin)
    assert none_yet.json()["total"] == 0
    paged = await client.get("/audit", params={"user_id": user.id, "page_size": 1, "page": 3}, headers=admin)
    assert paged.json()["total"] == 3
    assert [e["action"] for e in paged.json()["items"]] == ["auth.login_failed"]
    researcher = await user_headers(app, client, "not-auditor")
    assert (await client.get("/audit", headers=researcher)).status_code == 403


async def test_first_admin_is_created_from_bootstrap_settings_only_when_none_exists(
    app, client, signing_pem, fernet_key, tmp_path
):
    session = app.state.test_session
    settings = make_settings(
        signing_pem,
        fernet_key,
        tmp_path,
        bootstrap_admin_username="first-admin",
        bootstrap_admin_email="First@Example.org",
        bootstrap_admin_password="a long bootstrap phrase",
    )
    admins = await session.scalars(select(User).where(User.roles.contains(["admin"])))
    for existing in admins:
        existing.roles = ["researcher"]  # rolled back with the test
    await session.flush()
    created = await service.ensure_bootstrap_admin(session=session, settings=settings, passwords=app.state.passwords)
    assert created is not None
    assert (created.username, created.email, created.roles) == ("first-admin", "first@example.org", ["admin"])
    assert (await login(client, "first-admin", "a long bootstrap phrase"))["user"]["roles"] == ["admin"]
    again = await service.ensure_bootstrap_admin(session=session, settings=settings, passwords=app.state.passwords)
    assert again is None
