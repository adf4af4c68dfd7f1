"""The Django project served for real: migrated PostgreSQL database, uvicorn, WhiteNoise, Celery worker."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.metadata import version
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import django
import httpx
import psycopg2
import pytest
import redis

SERVER_DATABASE_URL = os.environ.get("DATABASE_URL", "")
REDIS_URL = os.environ.get("REDIS_URL", "")
if not SERVER_DATABASE_URL or not REDIS_URL:
    pytest.skip(
        "the Django project tests need a PostgreSQL server in DATABASE_URL and a Redis server in REDIS_URL",
        allow_module_level=True,
    )

REPO = Path(__file__).resolve().parents[2]
ADMIN_BASE_CSS = Path(django.__file__).parent / "contrib" / "admin" / "static" / "admin" / "css" / "base.css"
PLATFORM_VARIABLES = ("ENVIRONMENT", "SERVICE_REGISTRY_URL", "USER_SERVICE_URL")


def with_database(url: str, name: str) -> str:
    """`url` (PostgreSQL or Redis) naming database `name` on the same server."""
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


def free_port() -> int:
    """A TCP port nobody listens on at the moment."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """Run `manage.py` with `args`."""
    return subprocess.run(
        [sys.executable, "manage.py", *args], env=env, cwd=REPO, capture_output=True, text=True, timeout=120
    )


@contextmanager
def running_server(env: dict[str, str], log_path: Path) -> Iterator[str]:
    """Start `python -m federated_imputation` on a free port and yield its base URL once it answers."""
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "federated_imputation"],
            env={**env, "DJANGO_PORT": str(port)},
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, f"server exited:\n{log_path.read_text()}"
            try:
                httpx.get(f"{base_url}/health", timeout=10)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, f"server did not answer:\n{log_path.read_text()}"
                time.sleep(0.2)
        yield base_url
    finally:
        process.terminate()
        process.wait(timeout=20)


@pytest.fixture(scope="module")
def database_url() -> Iterator[str]:
    """A fresh database for this module on the server in DATABASE_URL, dropped afterwards."""
    name = f"test_django_{os.getpid()}"
    admin = psycopg2.connect(SERVER_DATABASE_URL)
    admin.autocommit = True
    try:
        with admin.cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            cursor.execute(f'CREATE DATABASE "{name}"')
        yield with_database(SERVER_DATABASE_URL, name)
        with admin.cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        admin.close()


@pytest.fixture(scope="module")
def django_env(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The environment of every process here: test mode, our database, a temporary STATIC_ROOT."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("DJANGO_") and key not in PLATFORM_VARIABLES
    }
    env.update(
        ENVIRONMENT="test",
        DJANGO_DATABASE_URL=database_url,
        DJANGO_STATIC_ROOT=str(tmp_path_factory.mktemp("static")),
        DJANGO_SETTINGS_MODULE="federated_imputation.settings",
    )
    return env


@pytest.fixture(scope="module")
def migrated_env(django_env: dict[str, str]) -> dict[str, str]:
    """`django_env` after `migrate` and `collectstatic`, as a deployment runs them."""
    migrate = manage(django_env, "migrate", "--no-input")
    assert migrate.returncode == 0, migrate.stderr
    assert "Applying imputation.0001_initial... OK" in migrate.stdout
    collect = manage(django_env, "collectstatic", "--no-input")
    assert collect.returncode == 0, collect.stderr
    return django_env


@pytest.fixture(scope="module")
def server(migrated_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Base URL of the project served by uvicorn on the migrated database."""
    with running_server(migrated_env, tmp_path_factory.mktemp("logs") / "django.log") as base_url:
        yield base_url


def test_migrations_match_the_models(migrated_env: dict[str, str]) -> None:
    result = manage(migrated_env, "makemigrations", "--check", "--dry-run")

    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "No changes detected"


@pytest.mark.parametrize("path", ["/health", "/health/"])
def test_health_is_healthy_on_a_migrated_database(server: str, path: str) -> None:
    response = httpx.get(f"{server}{path}")

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    for check in body["checks"].values():
        assert isinstance(check.pop("response_time_ms"), float)
    assert body == {
        "status": "healthy",
        "service": "django",
        "version": version("federated-imputation"),
        "checks": {
            "database": {"status": "healthy", "error": None},
            "redis": {"status": "healthy", "error": None},
        },
    }
    assert body["version"] == "0.1.0"


def test_health_reports_an_unreachable_database(django_env: dict[str, str], tmp_path: Path) -> None:
    closed_port = free_port()
    env = {
        **django_env,
        "DJANGO_DATABASE_URL": f"postgresql://postgres@127.0.0.1:{closed_port}/federated_imputation",
    }

    with running_server(env, tmp_path / "django.log") as base_url:
        response = httpx.get(f"{base_url}/health")

    assert response.status_code == 503
    body = response.json()
    database = body["checks"]["database"]
    assert body["status"] == "unhealthy"
    assert body["service"] == "django"
    assert database["status"] == "unhealthy"
    assert database["error"] == (f'connection to server at "127.0.0.1", port {closed_port} failed: Connection refused')
    assert isinstance(database["response_time_ms"], float)
    assert body["checks"]["redis"]["status"] == "healthy"
    assert body["checks"]["redis"]["error"] is None


def test_health_refuses_writes(server: str) -> None:
    response = httpx.post(f"{server}/health")

    assert response.status_code == 405
    assert response.headers["allow"] == "GET, HEAD"


def test_admin_redirects_to_its_login_page(server: str) -> None:
    response = httpx.get(f"{server}/admin/")

    assert response.status_code == 302
    assert response.headers["location"] == "/admin/login/?next=/admin/"

    login = httpx.get(f"{server}/admin/login/?next=/admin/")
    assert login.status_code == 200
    assert "<title>Log in | Django site admin</title>" in login.text
    assert login.headers["x-frame-options"] == "DENY"
    assert login.headers["x-content-type-options"] == "nosniff"


def test_whitenoise_serves_the_collected_static_files(server: str, migrated_env: dict[str, str]) -> None:
    collected = Path(migrated_env["DJANGO_STATIC_ROOT"]) / "admin" / "css" / "base.css"

    response = httpx.get(f"{server}/static/admin/css/base.css")

    assert collected.read_bytes() == ADMIN_BASE_CSS.read_bytes()
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/css")
    assert response.content == ADMIN_BASE_CSS.read_bytes()
    assert httpx.get(f"{server}/static/admin/css/missing.css").status_code == 404


def test_admin_api_needs_an_admin(server: str) -> None:
    response = httpx.get(f"{server}/api/admin/")

    assert response.status_code == 403
    assert response.json() == {"detail": "Authentication credentials were not provided."}


def test_services_and_panels_are_stored_with_their_constraints(migrated_env: dict[str, str]) -> None:
    script = """
import json
from django.db import IntegrityError, transaction
from imputation.models import ImputationService, ReferencePanel

service = ImputationService.objects.create(
    name="H3Africa Imputation Service", slug="h3africa", api_type="michigan",
    base_url="https://impute.afrigen-d.org", country_code="ZA",
)
ReferencePanel.objects.create(
    service=service, panel_id="apps@h3africa-v6hc-s@1.0.0", name="H3Africa v6", build="hg38",
    populations=["AFR", "EUR"], samples_count=4447,
)
try:
    with transaction.atomic():
        ReferencePanel.objects.create(service=service, panel_id="apps@h3africa-v6hc-s@1.0.0", name="Dup", build="hg19")
    duplicate = "stored"
except IntegrityError as exc:
    duplicate = exc.__cause__.diag.constraint_name
panel = service.reference_panels.get()
print(json.dumps({
    "service": [service.registry_id, service.is_active, str(service)],
    "panel": [panel.populations, panel.samples_count, panel.variants_count, panel.is_active, str(panel)],
    "duplicate": duplicate,
}))
"""
    result = manage(migrated_env, "shell", "-c", script)

    assert result.returncode == 0, result.stderr
    # The shell announces its automatic imports first; the script's output is the last line.
    assert json.loads(result.stdout.strip().splitlines()[-1]) == {
        "service": [None, True, "H3Africa Imputation Service"],
        "panel": [["AFR", "EUR"], 4447, None, True, "H3Africa v6 (apps@h3africa-v6hc-s@1.0.0)"],
        "duplicate": "reference_panel_service_panel_id_uniq",
    }


def test_celery_worker_uses_its_own_queue_and_beats(migrated_env: dict[str, str], tmp_path: Path) -> None:
    node = f"django-test-{uuid.uuid4().hex[:8]}"
    log_path = tmp_path / "worker.log"
    cache = redis.Redis.from_url(with_database(REDIS_URL, "0"))
    pattern = f"heartbeat:celery:django:{node}@*"
    with log_path.open("w") as log:
        worker = subprocess.Popen(
            [
                *(sys.executable, "-m", "celery", "-A", "federated_imputation", "worker"),
                *("--pool", "threads", "--concurrency", "1", "-n", f"{node}@%h"),
            ],
            env=migrated_env,
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        while not list(cache.scan_iter(match=pattern)):
            assert worker.poll() is None, f"worker exited:\n{log_path.read_text()}"
            assert time.monotonic() < deadline, f"no heartbeat:\n{log_path.read_text()}"
            time.sleep(0.2)
    finally:
        worker.terminate()
        worker.wait(timeout=30)

    output = log_path.read_text()
    redis_server = urlsplit(REDIS_URL)
    transport = next(line for line in output.splitlines() if ".> transport:" in line)
    assert transport.endswith(f"@{redis_server.hostname}:{redis_server.port}/1")
    assert ".> django           exchange=django(direct) key=django" in output
    # A clean shutdown removes the heartbeat at once.
    assert list(cache.scan_iter(match=pattern)) == []
    cache.close()
