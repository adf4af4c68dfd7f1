"""The Django side: signals push to a real registry over HTTP, events come back without echo, health is cached.

The registry runs for real (uvicorn in a thread, its own migrated database); Django runs in process on its own
migrated database. Django's service token is signed by the test token factory here; the integration test gets
a real one from the user service.
"""

from __future__ import annotations

import asyncio
import os
import threading
import uuid
from collections.abc import Iterator

import httpx
import pytest
import uvicorn

from microservices.common.localinfra import free_port
from microservices.service_registry.main import build_app
from tests.service_registry.conftest import registry_settings, service_body


class ThreadedServer:
    """An ASGI app served by uvicorn in a thread of its own, with its lifespan run."""

    def __init__(self, app) -> None:
        self.app = app
        self.port = free_port()
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=lambda: asyncio.run(self.server.serve()), daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> ThreadedServer:
        self.thread.start()
        while not self.server.started:
            if not self.thread.is_alive():
                raise RuntimeError("the server did not start")
            threading.Event().wait(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture(scope="module")
def django_setup(databases):
    """Django configured on the test session's fresh `federated_imputation` database, migrated."""
    # No variable is changed for good here: the platform's processes inherit this environment.
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "federated_imputation.settings")
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)


@pytest.fixture(scope="module")
def registry_server(django_setup, tokens) -> Iterator[ThreadedServer]:
    app = build_app(registry_settings())
    with ThreadedServer(app) as server:
        app.state.token_verifier.set_jwks(tokens.jwks)
        yield server


@pytest.fixture
def registry(registry_server, tokens, monkeypatch, settings_override) -> Iterator[httpx.Client]:
    """Django pointed at the registry, with a service token; yields an admin client of the registry."""
    from imputation.services import registry_client

    service_token = tokens.token(
        sub="service:django", username="django", roles=[], audience="federated-imputation-internal"
    )
    monkeypatch.setattr(registry_client, "service_token", lambda renew=False: service_token)
    settings_override(SERVICE_REGISTRY_URL=registry_server.url)
    headers = tokens.headers(sub="1", username="root", roles=["admin"])
    with httpx.Client(base_url=registry_server.url, headers=headers, timeout=10) as client:
        yield client
        from imputation.models import ImputationService
        from imputation.services.registry_sync import applying_registry_change

        with applying_registry_change():
            ImputationService.objects.all().delete()
        for service in client.get("/services?page_size=200").json()["items"]:
            client.delete(f"/services/{service['id']}")


@pytest.fixture
def settings_override(django_setup, monkeypatch):
    from django.conf import settings

    def override(**values) -> None:
        for name, value in values.items():
            monkeypatch.setattr(settings, name, value)

    return override


def new_service(**overrides):
    from imputation.models import ImputationService

    name = overrides.pop("name", f"Service {uuid.uuid4().hex[:6]}")
    fields = {
        "name": name,
        "slug": name.lower().replace(" ", "-"),
        "api_type": "michigan",
        "base_url": "https://imputation.example.org",
        "country_code": "ZA",
        **overrides,
    }
    return ImputationService.objects.create(**fields)


def test_saving_a_service_pushes_it_with_its_panels_and_links_the_ids(registry):
    from imputation.models import ReferencePanel

    service = new_service(name="H3Africa", location="Cape Town")
    service.refresh_from_db()
    assert service.registry_id is not None
    remote = registry.get(f"/services/{service.registry_id}").json()
    assert (remote["name"], remote["django_id"], remote["location"], remote["country_code"]) == (
        "H3Africa",
        service.pk,
        "Cape Town",
        "ZA",
    )
    ReferencePanel.objects.create(
        service=service, panel_id="h3a-v6", name="H3Africa v6", build="hg38", populations=["AFR"]
    )
    panels = registry.get(f"/services/{service.registry_id}/panels").json()["items"]
    assert [(p["panel_id"], p["build"], p["populations"]) for p in panels] == [("h3a-v6", "hg38", ["AFR"])]
    service.description = "African panel"
    service.save()
    assert registry.get(f"/services/{service.registry_id}").json()["description"] == "African panel"


def test_deleting_a_service_removes_it_from_the_registry(registry):
    service = new_service()
    service.refresh_from_db()
    registry_id = service.registry_id
    service.delete()
    assert registry.get(f"/services/{registry_id}").status_code == 404


def test_a_push_the_registry_cannot_take_is_queued_for_retry(registry, settings_override, monkeypatch):
    from imputation import tasks

    queued = []
    monkeypatch.setattr(tasks.push_service_to_registry, "apply_async", lambda **kw: queued.append(kw))
    settings_override(SERVICE_REGISTRY_URL=f"http://127.0.0.1:{free_port()}")
    service = new_service()
    assert queued == [{"args": (service.pk,), "countdown": 2}]
    service.refresh_from_db()
    assert service.registry_id is None


def test_the_retry_task_backs_off_exponentially():
    from celery.utils.time import get_exponential_backoff_interval

    from imputation.services.registry_client import RegistryUnavailable
    from imputation.tasks import push_service_to_registry as task

    assert task.autoretry_for == (RegistryUnavailable,)
    delays = [
        get_exponential_backoff_interval(task.retry_backoff, n, task.retry_backoff_max, task.retry_jitter)
        for n in range(10)
    ]
    assert delays == [2, 4, 8, 16, 32, 64, 128, 256, 512, 600]


def test_the_retry_task_pushes_once_the_registry_is_back(registry):
    from imputation.models import ImputationService
    from imputation.services.registry_sync import applying_registry_change
    from imputation.tasks import push_service_to_registry

    with applying_registry_change():
        service = ImputationService.objects.create(
            name="Queued", slug="queued", api_type="ga4gh_wes", base_url="https://wes.example.org"
        )
    assert registry.get("/services?search=queued").json()["total"] == 0
    assert push_service_to_registry.apply(args=(service.pk,)).get() == "created"
    assert registry.get("/services?search=queued").json()["total"] == 1


def test_registry_changes_are_applied_without_echo_and_django_origin_is_skipped(registry, monkeypatch):
    from imputation.models import ImputationService, ReferencePanel
    from imputation.services import registry_sync

    created = registry.post("/services", json=service_body(name="TOPMed", country_code="US")).json()
    registry.post(
        f"/services/{created['id']}/panels",
        json={"panel_id": "topmed-r3", "name": "TOPMed r3", "build": "hg38", "populations": ["all"]},
    )
    pushes = []
    monkeypatch.setattr(registry_sync, "push_or_queue", pushes.append)
    event = {"service_id": created["id"], "action": "created", "origin": "registry", "service": created}
    assert registry_sync.apply_service_changed(event) == "created"
    copy = ImputationService.objects.get(registry_id=created["id"])
    assert (copy.name, copy.slug, copy.country_code, copy.contact_email) == (
        "TOPMed",
        "topmed",
        "US",
        "help@example.org",
    )
    assert list(ReferencePanel.objects.filter(service=copy).values_list("panel_id", "build")) == [("topmed-r3", "hg38")]
    assert pushes == []
    assert registry_sync.apply_service_changed(event) == "updated"
    echoed = {**event, "origin": "django", "service": {**created, "name": "Renamed"}}
    assert registry_sync.apply_service_changed(echoed) == "skipped"
    assert ImputationService.objects.get(registry_id=created["id"]).name == "TOPMed"
    deleted = {**event, "action": "deleted"}
    assert registry_sync.apply_service_changed(deleted) == "deleted"
    assert not ImputationService.objects.filter(registry_id=created["id"]).exists()


def test_sync_registry_reconciles_both_ways_and_reports(registry):
    from django.core.management import call_command

    from imputation.models import ImputationService
    from imputation.services.registry_sync import applying_registry_change

    with applying_registry_change():
        ImputationService.objects.create(
            name="Unsynced", slug="unsynced", api_type="michigan", base_url="https://a.example.org"
        )
    registry.post("/services", json=service_body(name="Registry only"))
    from io import StringIO

    out = StringIO()
    call_command("sync_registry", stdout=out)
    assert out.getvalue().splitlines() == [
        "created in the registry: 1 (Unsynced)",
        "updated in the registry: 0",
        "created in Django: 1 (Registry only)",
        "updated in Django: 0",
        "refused by the registry: 0",
    ]
    assert ImputationService.objects.get(name="Registry only").registry_id is not None
    out = StringIO()
    call_command("sync_registry", stdout=out)
    assert out.getvalue().splitlines()[0] == "created in the registry: 0"
    assert out.getvalue().splitlines()[2] == "created in Django: 0"


def test_admin_health_cache_lifetime_follows_the_health(django_setup, settings_override, monkeypatch):
    from django.core.cache import cache

    from imputation.services import cache_service
    from imputation.services.registry_client import RegistryClient

    answers = {"status": "healthy"}
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(str(request.url))
        return httpx.Response(
            200,
            json={
                "service_id": 7,
                "status": answers["status"],
                "response_time_ms": 12.5,
                "error_message": None,
                "checked_at": "2026-11-22T03:00:00Z",
            },
        )

    from imputation.services import registry_client

    monkeypatch.setattr(registry_client, "service_token", lambda renew=False: "token")
    timeouts = []
    real_set = cache.set
    monkeypatch.setattr(
        cache, "set", lambda key, value, timeout: (timeouts.append(timeout), real_set(key, value, timeout))
    )
    registry_id = 900_000 + int(uuid.uuid4().int % 99_999)
    client = RegistryClient(base_url="http://registry", transport=httpx.MockTransport(handler))
    first = cache_service.service_health(registry_id, client=client)
    again = cache_service.service_health(registry_id, client=client)
    assert first == again
    assert first["status"] == "healthy"
    assert len(calls) == 1
    answers["status"] = "unhealthy"
    refreshed = cache_service.service_health(registry_id, refresh=True, client=client)
    assert refreshed["status"] == "unhealthy"
    assert calls[-1] == f"http://registry/services/{registry_id}/health?refresh=true"
    cache.delete(cache_service.cache_key(registry_id))
    cache_service.service_health(registry_id, client=client)
    assert timeouts == [900, 10, 60]
    assert cache_service.service_health(None) is None


def test_admin_api_is_for_admins_and_its_saves_reach_the_registry(registry):
    from django.contrib.auth.models import User
    from django.test import Client

    anonymous = Client(HTTP_HOST="localhost")
    assert anonymous.get("/api/admin/services/").status_code == 403
    staff = User.objects.create_superuser(f"root{uuid.uuid4().hex[:6]}", "r@example.org", "pw-long-enough-1")
    browser = Client(HTTP_HOST="localhost")
    browser.force_login(staff)
    created = browser.post(
        "/api/admin/services/",
        {"name": "Via API", "slug": "via-api", "api_type": "ga4gh_wes", "base_url": "https://wes.example.org"},
        content_type="application/json",
    )
    assert created.status_code == 201, created.content
    bad = browser.post(
        "/api/admin/services/",
        {"name": "Bad", "slug": "bad", "api_type": "slurm", "base_url": "https://x.example.org"},
        content_type="application/json",
    )
    assert bad.status_code == 400
    assert bad.json() == {"api_type": ['"slurm" is not a valid choice.']}
    remote = registry.get("/services/via-api").json()
    assert (remote["django_id"], remote["api_type"]) == (created.json()["id"], "ga4gh_wes")
    staff.delete()


def test_the_add_wizard_tests_a_connection_through_the_registry(registry):
    from django.contrib.auth.models import User
    from django.test import Client

    staff = User.objects.create_superuser(f"root{uuid.uuid4().hex[:6]}", "r@example.org", "pw-long-enough-1")
    browser = Client(HTTP_HOST="localhost")
    browser.force_login(staff)
    page = browser.get("/admin/imputation/imputationservice/add/")
    assert b'id="test-connection"' in page.content
    port = free_port()
    answer = browser.post(
        "/admin/imputation/imputationservice/test-connection/",
        {"api_type": "michigan", "base_url": f"http://127.0.0.1:{port}"},
    )
    assert answer.status_code == 200
    assert answer.json()["message"] == f"Not reachable: connection refused by 127.0.0.1:{port}."
    refused = browser.post(
        "/admin/imputation/imputationservice/test-connection/", {"api_type": "michigan", "base_url": "ftp://x"}
    )
    assert refused.status_code == 400
    assert "the base URL must start with http:// or https://" in refused.json()["message"]
    staff.delete()


@pytest.mark.parametrize(
    ("roles", "staff", "superuser", "in_group"),
    [(["admin"], True, True, False), (["service_admin"], True, False, True), (["researcher"], None, None, None)],
)
def test_admin_login_goes_through_the_user_service(django_setup, monkeypatch, roles, staff, superuser, in_group):
    from django.contrib.auth import authenticate

    from imputation import auth

    username = f"u{uuid.uuid4().hex[:8]}"
    seen = []

    def login(url, json, timeout):
        seen.append((url, json))
        if json["password"] != "right password":
            return httpx.Response(401, json={"error": "invalid_credentials", "detail": "No."})
        user = {"id": 5, "username": username, "email": "u@example.org", "first_name": "U", "last_name": "S"}
        return httpx.Response(200, json={"access_token": "a", "user": {**user, "roles": roles, "is_active": True}})

    monkeypatch.setattr(auth.httpx, "post", login)
    assert authenticate(None, username=username, password="wrong password") is None
    user = authenticate(None, username=username, password="right password")
    assert seen[-1][0].endswith("/auth/login")
    if staff is None:
        assert user is None
        return
    assert (user.is_staff, user.is_superuser, user.has_usable_password()) == (staff, superuser, False)
    assert user.groups.filter(name=auth.SERVICE_ADMIN_GROUP).exists() is in_group
    if in_group:
        assert user.has_perm("imputation.change_imputationservice")
        assert not user.has_perm("auth.add_user")
