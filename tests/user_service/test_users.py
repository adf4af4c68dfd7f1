"""Admin CRUD of accounts, search and pagination, deactivation that stops tokens at once, the profile."""

import time

from redis.asyncio import Redis

from tests.user_service.conftest import PASSWORD, bearer, login, make_user, service_headers, user_headers


async def admin_headers(app, client, username: str = "root") -> dict[str, str]:
    return await user_headers(app, client, username, roles=("admin",))


async def test_admin_lists_users_with_search_and_pagination(app, client):
    admin = await admin_headers(app, client)
    for name in ("zeta-alpha", "zeta-beta", "zeta-gamma"):
        await make_user(app, username=name)
    page = await client.get("/users/?search=ZETA&page=2&page_size=2", headers=admin)
    assert page.status_code == 200
    body = page.json()
    assert body["total"] == 3
    assert body["page"] == 2
    assert body["page_size"] == 2
    assert [u["username"] for u in body["items"]] == ["zeta-gamma"]
    by_email = await client.get("/users", params={"search": "zeta-beta@example"}, headers=admin)
    assert [u["username"] for u in by_email.json()["items"]] == ["zeta-beta"]
    admins = await client.get("/users", params={"role": "admin"}, headers=admin)
    assert "root" in [u["username"] for u in admins.json()["items"]]
    assert all("admin" in u["roles"] for u in admins.json()["items"])


async def test_researchers_may_not_list_or_create_users(app, client):
    headers = await user_headers(app, client, "plain")
    listed = await client.get("/users", headers=headers)
    assert listed.status_code == 403
    assert listed.json() == {"error": "forbidden", "detail": "This needs the admin or service_admin role."}
    created = await client.post(
        "/users", json={"username": "x1x", "email": "x@example.org", "password": PASSWORD}, headers=headers
    )
    assert created.status_code == 403
    assert (await client.get("/users")).status_code == 401


async def test_admin_creates_a_user_with_roles(app, client):
    admin = await admin_headers(app, client)
    response = await client.post(
        "/users",
        json={"username": "curator", "email": "c@example.org", "password": PASSWORD, "roles": ["service_admin"]},
        headers=admin,
    )
    assert response.status_code == 201
    assert response.json()["roles"] == ["service_admin"]
    assert (await login(client, "curator"))["user"]["roles"] == ["service_admin"]
    bad_role = await client.post(
        "/users",
        json={"username": "other", "email": "o@example.org", "password": PASSWORD, "roles": ["superuser"]},
        headers=admin,
    )
    assert bad_role.status_code == 422


async def test_user_detail_is_visible_to_himself_admins_and_services_only(app, client):
    alice = await make_user(app, username="alice-d")
    alice_headers = bearer((await login(client, "alice-d"))["access_token"])
    bob_headers = await user_headers(app, client, "bob-d")
    own = await client.get(f"/users/{alice.id}", headers=alice_headers)
    assert own.status_code == 200
    assert own.json()["username"] == "alice-d"
    hidden = await client.get(f"/users/{alice.id}", headers=bob_headers)
    assert hidden.status_code == 404
    assert hidden.json() == {"error": "user_not_found", "detail": f"There is no user {alice.id}."}
    as_service = await client.get(f"/users/{alice.id}", headers=await service_headers(client))
    assert as_service.status_code == 200
    assert set(as_service.json()) == {
        "id", "username", "email", "first_name", "last_name", "roles", "is_active", "created_at", "last_login_at"
    }  # fmt: skip
    missing = await client.get("/users/999999999", headers=await admin_headers(app, client))
    assert missing.status_code == 404


async def test_admin_updates_roles_and_the_old_token_stops(app, client):
    admin = await admin_headers(app, client)
    user = await make_user(app, username="promoted")
    old = (await login(client, "promoted"))["access_token"]
    response = await client.patch(
        f"/users/{user.id}/", json={"roles": ["researcher", "service_admin"], "first_name": "Pro"}, headers=admin
    )
    assert response.status_code == 200
    assert response.json()["roles"] == ["researcher", "service_admin"]
    assert response.json()["first_name"] == "Pro"
    assert (await client.get("/auth/user", headers=bearer(old))).json()["error"] == "token_revoked"
    assert (await login(client, "promoted"))["user"]["roles"] == ["researcher", "service_admin"]


async def test_deactivation_stops_every_token_at_once_and_login(app, client, databases):
    admin = await admin_headers(app, client)
    user = await make_user(app, username="leaving")
    session = await login(client, "leaving")
    token_response = await client.post("/tokens", json={"name": "script"}, headers=bearer(session["access_token"]))
    api_token = token_response.json()["token"]
    before = int(time.time())
    response = await client.post(f"/users/{user.id}/deactivate", headers=admin)
    after = int(time.time())
    assert response.status_code == 200
    assert response.json()["is_active"] is False
    redis = Redis.from_url(f"{databases.infra.redis_url.rstrip('/')}/0")
    try:
        mark = int(await redis.get(f"auth:revoked_before:{user.id}"))
        # One second ahead, so that a token issued within the second of the deactivation is refused too.
        assert before + 1 <= mark <= after + 1
        assert 3590 <= await redis.ttl(f"auth:revoked_before:{user.id}") <= 3600
    finally:
        await redis.aclose()
    refused = await client.get("/auth/user", headers=bearer(session["access_token"]))
    assert refused.status_code == 401
    assert refused.json()["error"] == "token_revoked"
    assert (await client.get("/auth/user", headers=bearer(api_token))).status_code == 401
    assert (await client.post("/auth/refresh", json={"refresh_token": session["refresh_token"]})).status_code == 401
    assert (await client.post("/auth/login", json={"username": "leaving", "password": PASSWORD})).status_code == 403
    reactivated = await client.post(f"/users/{user.id}/activate", headers=admin)
    assert reactivated.json()["is_active"] is True
    again = await login(client, "leaving")
    assert (await client.get("/auth/user", headers=bearer(again["access_token"]))).status_code == 200


async def test_an_admin_cannot_lock_himself_out(app, client):
    root = await make_user(app, username="selfish", roles=("admin",))
    headers = bearer((await login(client, "selfish"))["access_token"])
    deactivate = await client.post(f"/users/{root.id}/deactivate", headers=headers)
    assert deactivate.status_code == 409
    assert deactivate.json()["error"] == "cannot_modify_self"
    demote = await client.patch(f"/users/{root.id}", json={"roles": ["researcher"]}, headers=headers)
    assert demote.status_code == 409
    assert (await client.delete(f"/users/{root.id}", headers=headers)).status_code == 409


async def test_admin_deletes_a_user_and_the_audit_keeps_the_trace(app, client):
    admin = await admin_headers(app, client)
    user = await make_user(app, username="deleted")
    assert (await client.delete(f"/users/{user.id}", headers=admin)).status_code == 204
    assert (await client.get(f"/users/{user.id}", headers=admin)).status_code == 404
    audit = await client.get("/audit", params={"user_id": user.id, "action": "user.delete"}, headers=admin)
    assert [(e["action"], e["details"]) for e in audit.json()["items"]] == [("user.delete", {"username": "deleted"})]


async def test_profile_update_changes_only_the_callers_own_fields(app, client):
    await make_user(app, username="profiled")
    await make_user(app, username="neighbour", email="n@example.org")
    headers = bearer((await login(client, "profiled"))["access_token"])
    response = await client.patch(
        "/users/me",
        json={"first_name": "Rosalind", "last_name": "Franklin", "email": "RF@example.org"},
        headers=headers,
    )
    assert response.status_code == 200
    body = response.json()
    assert (body["first_name"], body["last_name"], body["email"]) == ("Rosalind", "Franklin", "rf@example.org")
    assert body["roles"] == ["researcher"]
    taken = await client.patch("/users/me", json={"email": "n@example.org"}, headers=headers)
    assert taken.status_code == 409
    assert taken.json()["error"] == "email_taken"
    # Roles are not part of the profile: the field is ignored.
    escalated = await client.patch("/users/me", json={"roles": ["admin"]}, headers=headers)
    assert escalated.json()["roles"] == ["researcher"]
    me = await client.get("/users/me", headers=headers)
    assert me.json()["first_name"] == "Rosalind"


async def test_service_accounts_have_no_profile(client):
    response = await client.get("/auth/user", headers=await service_headers(client))
    assert response.status_code == 403
    assert response.json()["error"] == "not_a_user"
