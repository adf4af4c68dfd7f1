"""The Django ↔ registry gap, closed, on the real platform: admin form → registry → health check, and back."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator

import httpx
import psycopg2
import pytest
import redis

from microservices.common.localinfra import free_port
from microservices.common.service_auth import client_secret_for
from tests.harness import ROOT, wait_until

pytestmark = pytest.mark.integration

SUPERUSER_PASSWORD = f"pw-{uuid.uuid4().hex}"


@pytest.fixture(scope="module")
def michigan_fake() -> Iterator[str]:
    """The Michigan fake as a process of its own."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.fakes.michigan", "--port", str(port), "--token", "t"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"

    def answers() -> bool:
        try:
            return httpx.get(f"{url}/api/v2/server", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_until(answers, timeout_s=20)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture(scope="module")
def service_headers(platform) -> dict[str, str]:
    """Django's service-account token from the user service (client-credentials grant)."""
    response = httpx.post(
        f"{platform.url('user_service')}/auth/token",
        data={
            "grant_type": "client_credentials",
            "client_id": "django",
            "client_secret": client_secret_for(platform.env["INTERNAL_CLIENT_SECRET"], "django"),
        },
        timeout=10,
    )
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


@pytest.fixture(scope="module")
def admin_browser(platform) -> Iterator[httpx.Client]:
    """A browser session logged into the Django admin as a superuser."""
    username = f"root{uuid.uuid4().hex[:6]}"
    subprocess.run(
        [sys.executable, "manage.py", "createsuperuser", "--noinput", "--username", username, "--email", "r@e.org"],
        env={**platform.env, "DJANGO_SUPERUSER_PASSWORD": SUPERUSER_PASSWORD},
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    with httpx.Client(base_url=platform.url("django"), timeout=20, follow_redirects=False) as browser:
        login_page = browser.get("/admin/login/")
        response = browser.post(
            "/admin/login/?next=/admin/",
            data={
                "csrfmiddlewaretoken": csrf_token(login_page.text),
                "username": username,
                "password": SUPERUSER_PASSWORD,
                "next": "/admin/",
            },
        )
        assert response.status_code == 302, response.text[:500]
        yield browser


def csrf_token(html: str) -> str:
    match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html)
    assert match, "no CSRF token in the page"
    return match.group(1)


def add_service_in_admin(browser: httpx.Client, *, name: str, base_url: str) -> None:
    form = browser.get("/admin/imputation/imputationservice/add/")
    assert form.status_code == 200
    response = browser.post(
        "/admin/imputation/imputationservice/add/",
        data={
            "csrfmiddlewaretoken": csrf_token(form.text),
            "name": name,
            "slug": name.lower(),
            "api_type": "michigan",
            "base_url": base_url,
            "description": "",
            "location": "Test lab",
            "country_code": "ZA",
            "contact_email": "",
            "is_active": "on",
            "reference_panels-TOTAL_FORMS": "0",
            "reference_panels-INITIAL_FORMS": "0",
            "reference_panels-MIN_NUM_FORMS": "0",
            "reference_panels-MAX_NUM_FORMS": "1000",
            "_save": "Save",
        },
    )
    assert response.status_code == 302, response.text[:2000]


def registry_service(platform, headers: dict[str, str], name: str) -> dict | None:
    response = httpx.get(f"{platform.url('service_registry')}/services", params={"search": name}, headers=headers)
    items = [s for s in response.json()["items"] if s["name"] == name]
    return items[0] if items else None


def django_rows(platform, name: str) -> list[tuple]:
    with psycopg2.connect(platform.databases.url("django")) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT id, registry_id FROM imputation_imputationservice WHERE name = %s", (name,))
        return cursor.fetchall()


def test_a_service_saved_in_the_admin_reaches_the_registry_and_is_health_checked(
    platform, admin_browser, service_headers, michigan_fake
):
    name = f"Fake{uuid.uuid4().hex[:6]}"
    add_service_in_admin(admin_browser, name=name, base_url=michigan_fake)
    remote = wait_until(lambda: registry_service(platform, service_headers, name), timeout_s=10)
    (django_id, registry_id) = django_rows(platform, name)[0]
    assert (remote["django_id"], remote["id"]) == (django_id, registry_id)
    assert (remote["base_url"], remote["country_code"], remote["location"]) == (michigan_fake, "ZA", "Test lab")
    # The checker's tick is 5 s; a service never checked is due at once.
    checked = wait_until(
        lambda: (s := registry_service(platform, service_headers, name)) and s["health_status"] == "healthy" and s,
        timeout_s=20,
    )
    assert checked["is_available"] is True
    events = redis.Redis.from_url(f"{platform.redis.url}/3", decode_responses=True)
    published = wait_until(
        lambda: [
            payload
            for _, fields in events.xrange("events:service.health.changed")
            if (payload := json.loads(fields["payload"]))["service_id"] == registry_id
        ],
        timeout_s=10,
    )
    assert (published[0]["old_status"], published[0]["new_status"], published[0]["name"]) == (
        "unknown",
        "healthy",
        name,
    )


def test_a_save_while_the_registry_is_stopped_arrives_once_it_is_back(platform, admin_browser, service_headers):
    name = f"Later{uuid.uuid4().hex[:6]}"
    platform.stop_component("service_registry")
    try:
        add_service_in_admin(admin_browser, name=name, base_url="https://later.example.org")
        assert django_rows(platform, name)[0][1] is None
    finally:
        platform.restart_component("service_registry")
    # The Celery task retries after 2, 4, 8, ... seconds.
    remote = wait_until(lambda: registry_service(platform, service_headers, name), timeout_s=40)
    assert remote["django_id"] == django_rows(platform, name)[0][0]


def test_a_service_created_in_the_registry_appears_in_django_without_echo(platform, service_headers):
    name = f"Remote{uuid.uuid4().hex[:6]}"
    created = httpx.post(
        f"{platform.url('service_registry')}/services",
        json={"name": name, "api_type": "ga4gh_wes", "base_url": "https://wes.example.org/ga4gh/wes/v1"},
        headers=service_headers,
    )
    assert created.status_code == 201, created.text
    registry_id = created.json()["id"]
    rows = wait_until(lambda: django_rows(platform, name), timeout_s=20)
    assert rows[0][1] == registry_id
    # No echo: Django did not push the copy back, so the registry never heard of its Django id.
    assert registry_service(platform, service_headers, name)["django_id"] is None
    with psycopg2.connect(platform.databases.url("service_registry")) as connection, connection.cursor() as cursor:
        cursor.execute(
            "SELECT payload->>'origin', payload->>'action' FROM outbox_event "
            "WHERE topic = 'service.changed' AND (payload->>'service_id')::int = %s",
            (registry_id,),
        )
        assert cursor.fetchall() == [("registry", "created")]


def test_the_platform_admin_logs_into_the_django_admin_through_the_user_service(platform):
    with httpx.Client(base_url=platform.url("django"), timeout=20) as browser:
        login_page = browser.get("/admin/login/")
        response = browser.post(
            "/admin/login/?next=/admin/",
            data={
                "csrfmiddlewaretoken": csrf_token(login_page.text),
                "username": platform.env["BOOTSTRAP_ADMIN_USERNAME"],
                "password": platform.env["BOOTSTRAP_ADMIN_PASSWORD"],
                "next": "/admin/",
            },
        )
        assert response.status_code == 302
        assert response.headers["location"] == "/admin/"
        assert browser.get("/admin/imputation/imputationservice/").status_code == 200
