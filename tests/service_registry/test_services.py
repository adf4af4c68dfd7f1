"""Services: CRUD with validation and authorisation, filters, pagination, credentials never shown."""

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import select

from microservices.service_registry.models import ImputationService
from tests.service_registry.conftest import FERNET_KEY, create, events, service_body

SECRET = "eyJhbGciOiJIUzI1NiJ9.michigan-api-token"


async def test_service_admin_registers_a_service_with_a_normalised_url_and_a_slug(client, service_admin):
    response = await client.post(
        "/services",
        json=service_body(base_url="  HTTPS://ImputationServer.SPH.umich.edu/ "),
        headers=service_admin,
    )
    assert response.status_code == 201
    body = response.json()
    assert {k: body[k] for k in ("name", "slug", "api_type", "base_url", "country_code", "contact_email")} == {
        "name": "Michigan Imputation Server",
        "slug": "michigan-imputation-server",
        "api_type": "michigan",
        "base_url": "https://imputationserver.sph.umich.edu",
        "country_code": "US",
        "contact_email": "help@example.org",
    }
    assert body["health_status"] == "unknown"
    assert body["is_active"] is True
    assert body["is_available"] is False
    assert body["has_credential"] is False
    assert body["tags"] == ["public", "minimac4"]
    assert body["response_time_ms"] is None
    assert body["last_checked_at"] is None


async def test_admin_may_write_too(client, admin):
    assert (await client.post("/services", json=service_body(), headers=admin)).status_code == 201


async def test_researcher_cannot_write_but_can_read(client, researcher, service_admin):
    created = await create(client, service_admin)
    denied = await client.post("/services", json=service_body(name="Other"), headers=researcher)
    assert denied.status_code == 403
    assert denied.json() == {"error": "forbidden", "detail": "This needs one of the roles: admin, service_admin."}
    assert (
        await client.patch(f"/services/{created['id']}", json={"is_active": False}, headers=researcher)
    ).status_code == 403
    assert (await client.delete(f"/services/{created['id']}", headers=researcher)).status_code == 403
    read = await client.get(f"/services/{created['id']}", headers=researcher)
    assert read.status_code == 200
    assert read.json()["name"] == "Michigan Imputation Server"


async def test_no_token_is_401(client):
    response = await client.get("/services")
    assert response.status_code == 401
    assert response.json()["error"] == "not_authenticated"


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"base_url": "ftp://example.org"}, "base_url", "the base URL must start with http:// or https://"),
        ({"base_url": "https://"}, "base_url", "the base URL must name a host"),
        ({"base_url": "https://example.org/?a=1"}, "base_url", "must not carry a query or a fragment"),
        ({"api_type": "slurm"}, "api_type", "Input should be 'michigan', 'ga4gh_wes' or 'dnastack'"),
        ({"country_code": "usa"}, "country_code", "String should match pattern"),
        ({"contact_email": "nobody"}, "contact_email", "not an e-mail address"),
        ({"min_samples": 100, "max_samples": 10}, "request", "min_samples is larger than max_samples"),
    ],
)
async def test_malformed_payloads_are_422_naming_the_field(client, service_admin, overrides, field, message):
    response = await client.post("/services", json=service_body(**overrides), headers=service_admin)
    assert response.status_code == 422
    body = response.json()
    assert body["error"] == "validation_error"
    assert message in body["detail"]
    assert body["detail"].startswith(f"Invalid request: {field}")


async def test_duplicate_name_is_409(client, service_admin):
    await create(client, service_admin)
    response = await client.post(
        "/services", json=service_body(name="michigan imputation SERVER"), headers=service_admin
    )
    assert response.status_code == 409
    assert response.json() == {
        "error": "duplicate_name",
        "detail": "A service with the name 'michigan imputation SERVER' already exists.",
    }


async def test_same_slug_from_another_name_gets_a_suffix(client, service_admin):
    await create(client, service_admin, name="H3Africa")
    second = await create(client, service_admin, name="H3Africa!")
    assert second["slug"] == "h3africa-2"


async def test_credential_is_encrypted_at_rest_and_never_returned(app, client, service_admin, service_account, admin):
    created = await create(client, service_admin, credential=SECRET)
    assert created["has_credential"] is True
    stored = await app.state.test_session.scalar(
        select(ImputationService.credential_encrypted).where(ImputationService.id == created["id"])
    )
    assert stored != SECRET
    assert SECRET not in stored
    assert Fernet(FERNET_KEY.encode()).decrypt(stored.encode()).decode() == SECRET
    for path in ("/services", f"/services/{created['id']}", f"/services/{created['slug']}"):
        response = await client.get(path, headers=admin)
        assert SECRET not in response.text
        assert "credential_encrypted" not in response.text
    internal = await client.get(f"/internal/services/{created['id']}/credential", headers=service_account)
    assert internal.status_code == 200
    assert internal.json() == {"credential": SECRET, "auth_mode": "api_token"}
    denied = await client.get(f"/internal/services/{created['id']}/credential", headers=admin)
    assert denied.status_code == 403
    (event,) = await events(app, "service.changed")
    assert SECRET not in str(event)


async def test_credential_can_be_replaced_and_removed(client, service_admin, service_account):
    created = await create(client, service_admin, credential=SECRET)
    await client.patch(f"/services/{created['id']}", json={"credential": "new-token"}, headers=service_admin)
    internal = await client.get(f"/internal/services/{created['id']}/credential", headers=service_account)
    assert internal.json()["credential"] == "new-token"
    removed = await client.patch(f"/services/{created['id']}", json={"credential": None}, headers=service_admin)
    assert removed.json()["has_credential"] is False
    internal = await client.get(f"/internal/services/{created['id']}/credential", headers=service_account)
    assert internal.json() == {"credential": None, "auth_mode": "api_token"}


async def test_credential_without_a_key_is_refused(databases, tokens, service_admin):
    from microservices.service_registry.main import build_app
    from tests.harness import app_client
    from tests.service_registry.conftest import registry_settings

    async with app_client(build_app(registry_settings(fernet_key=None)), tokens=tokens) as client:
        response = await client.post("/services", json=service_body(credential=SECRET), headers=service_admin)
    assert response.status_code == 503
    assert response.json() == {
        "error": "no_encryption_key",
        "detail": "Credentials cannot be stored: the service registry has no FERNET_KEY.",
    }


async def test_lookup_by_id_or_slug_and_404(client, researcher, service_admin):
    created = await create(client, service_admin)
    by_id = (await client.get(f"/services/{created['id']}", headers=researcher)).json()
    by_slug = (await client.get("/services/michigan-imputation-server", headers=researcher)).json()
    assert by_id == by_slug
    missing = await client.get("/services/no-such-service", headers=researcher)
    assert missing.status_code == 404
    assert missing.json() == {"error": "service_not_found", "detail": "There is no service 'no-such-service'."}


async def test_list_filters_and_pagination(client, researcher, service_admin):
    await create(client, service_admin, name="Michigan")
    await create(client, service_admin, name="TOPMed", country_code="US", tags=["nih"])
    await create(client, service_admin, name="H3Africa", country_code="ZA", tags=["africa"])
    await create(client, service_admin, name="ILIFU", api_type="ga4gh_wes", country_code="ZA", auth_mode="bearer")
    await create(client, service_admin, name="eLwazi", api_type="ga4gh_wes", country_code="ZA", is_active=False)

    async def names(query: str) -> list[str]:
        response = await client.get(f"/services?{query}", headers=researcher)
        assert response.status_code == 200
        return [s["name"] for s in response.json()["items"]]

    assert await names("api_type=ga4gh_wes") == ["eLwazi", "ILIFU"]
    assert await names("country_code=za") == ["eLwazi", "H3Africa", "ILIFU"]
    assert await names("country_code=ZA&is_active=true") == ["H3Africa", "ILIFU"]
    assert await names("tag=AFRICA") == ["H3Africa"]
    assert await names("health_status=healthy") == []
    assert await names("search=med") == ["TOPMed"]
    page = (await client.get("/services?page=2&page_size=2", headers=researcher)).json()
    assert [s["name"] for s in page["items"]] == ["ILIFU", "Michigan"]
    assert (page["total"], page["page"], page["page_size"]) == (5, 2, 2)
    bad = await client.get("/services?health_status=sleepy", headers=researcher)
    assert bad.status_code == 422


async def test_update_changes_fields_and_publishes(app, client, service_admin):
    created = await create(client, service_admin)
    response = await client.patch(
        f"/services/{created['id']}",
        json={"description": "MIS 2", "tags": ["Public", "public", "imputationserver2"], "max_samples": 100000},
        headers=service_admin,
    )
    assert response.status_code == 200
    body = response.json()
    assert (body["description"], body["tags"], body["max_samples"]) == (
        "MIS 2",
        ["public", "imputationserver2"],
        100000,
    )
    conflict = await create(client, service_admin, name="Other")
    clash = await client.patch(f"/services/{conflict['id']}", json={"name": created["name"]}, headers=service_admin)
    assert clash.status_code == 409
    published = await events(app, "service.changed")
    assert [(e["service_id"], e["action"], e["origin"]) for e in published] == [
        (created["id"], "created", "registry"),
        (created["id"], "updated", "registry"),
        (conflict["id"], "created", "registry"),
    ]
    assert published[1]["service"]["description"] == "MIS 2"


async def test_delete_removes_and_publishes(app, client, service_admin, researcher):
    created = await create(client, service_admin)
    assert (await client.delete(f"/services/{created['id']}", headers=service_admin)).status_code == 204
    assert (await client.get(f"/services/{created['id']}", headers=researcher)).status_code == 404
    published = await events(app, "service.changed")
    assert [e["action"] for e in published] == ["created", "deleted"]
    assert published[1]["service"]["name"] == "Michigan Imputation Server"


async def test_django_upsert_is_idempotent_keyed_by_the_django_id(app, client, service_account, researcher):
    body = {
        **service_body(name="TOPMed", slug="topmed"),
        "panels": [
            {"panel_id": "topmed-r3", "name": "TOPMed r3", "build": "hg38", "populations": ["all"]},
            {"panel_id": "topmed-r2", "name": "TOPMed r2", "build": "hg38", "populations": ["all"]},
        ],
    }
    first = await client.put("/internal/services/django/42", json=body, headers=service_account)
    assert first.status_code == 201
    again = await client.put("/internal/services/django/42", json=body, headers=service_account)
    assert again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    assert again.json()["django_id"] == 42
    body["panels"] = body["panels"][:1]
    body["description"] = "NHLBI"
    await client.put("/internal/services/django/42", json=body, headers=service_account)
    panels = (await client.get(f"/services/{first.json()['id']}/panels", headers=researcher)).json()["items"]
    assert {p["panel_id"]: p["is_active"] for p in panels} == {"topmed-r2": False, "topmed-r3": True}
    listed = (await client.get("/services?search=topmed", headers=researcher)).json()
    assert listed["total"] == 1
    assert listed["items"][0]["description"] == "NHLBI"
    assert [e["origin"] for e in await events(app, "service.changed")] == ["django", "django", "django"]
    assert (await client.delete("/internal/services/django/42", headers=service_account)).status_code == 204
    assert (await client.delete("/internal/services/django/42", headers=service_account)).status_code == 204
    assert (await client.get("/services/topmed", headers=researcher)).status_code == 404


async def test_django_upsert_adopts_a_service_registered_here_first(client, service_admin, service_account):
    created = await create(client, service_admin, name="H3Africa")
    response = await client.put(
        "/internal/services/django/7", json=service_body(name="H3Africa", location="Cape Town"), headers=service_account
    )
    assert response.status_code == 200
    assert response.json()["id"] == created["id"]
    assert response.json()["location"] == "Cape Town"


async def test_django_upsert_needs_a_service_account(client, admin):
    response = await client.put("/internal/services/django/1", json=service_body(), headers=admin)
    assert response.status_code == 403
    assert response.json() == {"error": "forbidden", "detail": "This endpoint is for the platform's own services."}


async def test_django_upsert_keeps_what_django_does_not_hold(client, service_admin, service_account):
    created = await create(client, service_admin, name="MIS", credential=SECRET, tags=["public"], poll_interval_s=300)
    pushed = await client.put(
        "/internal/services/django/9",
        json={"name": "MIS", "api_type": "michigan", "base_url": "https://mis.example.org", "description": "edited"},
        headers=service_account,
    )
    assert pushed.status_code == 200
    body = pushed.json()
    assert (body["id"], body["description"], body["base_url"]) == (created["id"], "edited", "https://mis.example.org")
    assert (body["has_credential"], body["tags"], body["poll_interval_s"], body["auth_mode"]) == (
        True,
        ["public"],
        300,
        "api_token",
    )
