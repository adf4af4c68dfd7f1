"""Groups, their members, and service grants to users and groups as other services read them."""

from sqlalchemy import select

from microservices.user_service.models import AuditEntry
from tests.user_service.conftest import bearer, login, make_user, service_headers, user_headers


async def test_group_crud_and_members(app, client):
    admin = await user_headers(app, client, "g-admin", roles=("admin",))
    member = await make_user(app, username="g-member")
    created = await client.post("/groups/", json={"name": "Genomics Lab", "description": "H3A"}, headers=admin)
    assert created.status_code == 201
    group_id = created.json()["id"]
    assert created.json()["member_count"] == 0
    duplicate = await client.post("/groups", json={"name": "genomics lab"}, headers=admin)
    assert duplicate.status_code == 409
    assert duplicate.json()["error"] == "group_exists"
    added = await client.post(f"/groups/{group_id}/members", json={"user_id": member.id}, headers=admin)
    assert added.status_code == 200
    assert [m["username"] for m in added.json()["members"]] == ["g-member"]
    listed = await client.get("/groups", params={"search": "genomics"}, headers=admin)
    assert [(g["name"], g["member_count"]) for g in listed.json()["items"]] == [("Genomics Lab", 1)]
    renamed = await client.patch(f"/groups/{group_id}", json={"name": "Genomics"}, headers=admin)
    assert renamed.json()["name"] == "Genomics"
    assert (await client.delete(f"/groups/{group_id}/members/{member.id}", headers=admin)).status_code == 204
    gone = await client.delete(f"/groups/{group_id}/members/{member.id}", headers=admin)
    assert gone.status_code == 404
    assert gone.json()["error"] == "member_not_found"
    unknown_user = await client.post(f"/groups/{group_id}/members", json={"user_id": 999999999}, headers=admin)
    assert unknown_user.status_code == 404
    assert (await client.delete(f"/groups/{group_id}", headers=admin)).status_code == 204
    assert (await client.get(f"/groups/{group_id}", headers=admin)).status_code == 404


async def test_researchers_cannot_manage_groups_or_grants(app, client):
    headers = await user_headers(app, client, "g-plain")
    user = await make_user(app, username="g-other")
    assert (await client.get("/groups", headers=headers)).status_code == 403
    grant = await client.post(f"/users/{user.id}/permissions", json={"service_id": 1}, headers=headers)
    assert grant.status_code == 403


async def test_effective_permissions_merge_user_and_group_grants(app, client):
    manager = await user_headers(app, client, "p-manager", roles=("service_admin",))
    user = await make_user(app, username="p-user")
    first = await client.post(
        f"/users/{user.id}/permissions", json={"service_id": 3, "monthly_quota": 10}, headers=manager
    )
    assert first.status_code == 201
    assert (first.json()["service_id"], first.json()["monthly_quota"]) == (3, 10)
    changed = await client.post(
        f"/users/{user.id}/permissions/", json={"service_id": 3, "monthly_quota": 5}, headers=manager
    )
    assert changed.status_code == 200
    assert changed.json()["monthly_quota"] == 5
    small = (await client.post("/groups", json={"name": "small"}, headers=manager)).json()["id"]
    large = (await client.post("/groups", json={"name": "large"}, headers=manager)).json()["id"]
    for group_id in (small, large):
        await client.post(f"/groups/{group_id}/members", json={"user_id": user.id}, headers=manager)
    await client.post(f"/groups/{small}/permissions", json={"service_id": 3, "monthly_quota": 100}, headers=manager)
    await client.post(f"/groups/{small}/permissions", json={"service_id": 7, "monthly_quota": 20}, headers=manager)
    await client.post(f"/groups/{large}/permissions", json={"service_id": 7, "monthly_quota": None}, headers=manager)
    await client.post(f"/groups/{large}/permissions", json={"service_id": 9, "monthly_quota": 4}, headers=manager)

    response = await client.get(f"/users/{user.id}/permissions", headers=await service_headers(client))
    assert response.status_code == 200
    assert (await client.get(f"/users/{user.id}/permissions", headers=manager)).json() == response.json()
    found = await client.get("/users", params={"search": "p-user"}, headers=manager)
    assert [u["id"] for u in found.json()["items"]] == [user.id]
    assert response.json() == {
        "user_id": user.id,
        "roles": ["researcher"],
        "services": [
            {"service_id": 3, "monthly_quota": 5, "via": "user"},
            {"service_id": 7, "monthly_quota": None, "via": "group:large"},
            {"service_id": 9, "monthly_quota": 4, "via": "group:large"},
        ],
        "all_services": False,
    }
    assert (await client.delete(f"/groups/{large}/permissions/7", headers=manager)).status_code == 204
    assert (await client.delete(f"/users/{user.id}/permissions/3", headers=manager)).status_code == 204
    missing = await client.delete(f"/users/{user.id}/permissions/3", headers=manager)
    assert missing.status_code == 404
    assert missing.json()["error"] == "grant_not_found"
    user_headers_own = bearer((await login(client, "p-user"))["access_token"])
    own = await client.get(f"/users/{user.id}/permissions", headers=user_headers_own)
    assert own.json()["services"] == [
        {"service_id": 3, "monthly_quota": 100, "via": "group:small"},
        {"service_id": 7, "monthly_quota": 20, "via": "group:small"},
        {"service_id": 9, "monthly_quota": 4, "via": "group:large"},
    ]


async def test_admins_may_use_every_service_and_others_see_no_ones_permissions(app, client):
    root = await make_user(app, username="p-root", roles=("admin",))
    nosy = await user_headers(app, client, "p-nosy")
    response = await client.get(f"/users/{root.id}/permissions", headers=await service_headers(client))
    assert response.json() == {"user_id": root.id, "roles": ["admin"], "services": [], "all_services": True}
    assert (await client.get(f"/users/{root.id}/permissions", headers=nosy)).status_code == 404


async def test_grant_payload_is_validated(app, client):
    admin = await user_headers(app, client, "p-admin2", roles=("admin",))
    user = await make_user(app, username="p-target")
    for payload in ({"service_id": 0}, {"service_id": 2, "monthly_quota": -1}, {"monthly_quota": 3}):
        response = await client.post(f"/users/{user.id}/permissions", json=payload, headers=admin)
        assert response.status_code == 422
    missing_user = await client.post("/users/999999999/permissions", json={"service_id": 2}, headers=admin)
    assert missing_user.status_code == 404


async def test_a_grants_quota_is_changed_in_place_and_audited(app, client):
    admin = await user_headers(app, client, "q-admin", roles=("admin",))
    user = await make_user(app, username="q-target")
    granted = await client.post(
        f"/users/{user.id}/permissions", json={"service_id": 4, "monthly_quota": 10}, headers=admin
    )
    assert granted.status_code == 201
    changed = await client.patch(f"/users/{user.id}/permissions/4", json={"monthly_quota": 25}, headers=admin)
    assert changed.status_code == 200, changed.text
    assert (changed.json()["service_id"], changed.json()["monthly_quota"]) == (4, 25)
    assert changed.json()["created_at"] == granted.json()["created_at"]  # the same grant, not a new one
    unlimited = await client.patch(f"/users/{user.id}/permissions/4", json={"monthly_quota": None}, headers=admin)
    assert unlimited.json()["monthly_quota"] is None
    seen = await client.get(f"/users/{user.id}/permissions", headers=await service_headers(client))
    assert seen.json()["services"] == [{"service_id": 4, "monthly_quota": None, "via": "user"}]
    entries = (
        await app.state.test_session.scalars(
            select(AuditEntry).where(AuditEntry.action == "permission.update").order_by(AuditEntry.id)
        )
    ).all()
    assert [(e.target_type, e.target_id, e.details) for e in entries] == [
        ("user", str(user.id), {"service_id": 4, "monthly_quota": 25, "previous_quota": 10}),
        ("user", str(user.id), {"service_id": 4, "monthly_quota": None, "previous_quota": 25}),
    ]


async def test_a_quota_change_is_validated_and_needs_a_grant_and_a_grant_manager(app, client):
    admin = await user_headers(app, client, "q-admin2", roles=("admin",))
    plain = await user_headers(app, client, "q-plain")
    user = await make_user(app, username="q-target2")
    await client.post(f"/users/{user.id}/permissions", json={"service_id": 5, "monthly_quota": 3}, headers=admin)
    for payload in ({"monthly_quota": -1}, {"monthly_quota": "many"}, {}):
        response = await client.patch(f"/users/{user.id}/permissions/5", json=payload, headers=admin)
        assert response.status_code == 422, payload
    missing = await client.patch(f"/users/{user.id}/permissions/6", json={"monthly_quota": 1}, headers=admin)
    assert (missing.status_code, missing.json()) == (
        404,
        {"error": "grant_not_found", "detail": "There is no grant of service 6 to change."},
    )
    refused = await client.patch(f"/users/{user.id}/permissions/5", json={"monthly_quota": 1000}, headers=plain)
    assert refused.status_code == 403
    nobody = await client.patch("/users/999999999/permissions/5", json={"monthly_quota": 1}, headers=admin)
    assert nobody.status_code == 404
    seen = await client.get(f"/users/{user.id}/permissions", headers=admin)
    assert seen.json()["services"] == [{"service_id": 5, "monthly_quota": 3, "via": "user"}]
