"""Checks of the container set-up: the compose file, its example env file, and the nginx edge config.

These need no platform code and no Docker daemon. `docker-compose` (or the `docker compose` plugin) validates the
compose file offline, and Debian's nginx checks and serves the edge config against stub upstreams
(scripts/ci-system-packages.txt lists both). A test skips when its binary is missing.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
COMPOSE_FILE = REPO / "docker-compose.microservices.yml"
ENV_EXAMPLE = REPO / ".env.microservices.example"
NGINX_CONF = REPO / "nginx" / "nginx.conf"

# docs/development.md: component -> (command, port)
HTTP_SERVICES: dict[str, tuple[str, int]] = {
    "gateway": ("python -m microservices.gateway", 8000),
    "user_service": ("python -m microservices.user_service", 8001),
    "service_registry": ("python -m microservices.service_registry", 8002),
    "job_processor": ("python -m microservices.job_processor", 8003),
    "file_manager": ("python -m microservices.file_manager", 8004),
    "notification": ("python -m microservices.notification", 8005),
    "monitoring": ("python -m microservices.monitoring", 8006),
    "django": ("python -m federated_imputation", 8010),
}
WORKERS: dict[str, str] = {
    "job-worker": "celery -A microservices.job_processor.worker worker --pool threads --concurrency 4 --loglevel INFO"
    " --hostname jobs@%h",
    "job-beat": "celery -A microservices.job_processor.worker beat --loglevel INFO --schedule /tmp/celerybeat-schedule",
    "django-worker": "celery -A federated_imputation worker --pool threads --concurrency 2 --loglevel INFO"
    " --hostname django@%h",
}
PYTHON_SERVICES = set(HTTP_SERVICES) | set(WORKERS)
ALL_SERVICES = PYTHON_SERVICES | {"postgres", "redis", "migrate", "frontend", "mailpit", "nginx"}
MIGRATE_COMMAND = (
    'sh -c "python -m microservices.common.migrate upgrade && python manage.py migrate --noinput'
    ' && python manage.py collectstatic --noinput"'
)
REQUIRED_SECRETS = {
    "POSTGRES_PASSWORD",
    "DJANGO_SECRET_KEY",
    "FERNET_KEY",
    "BOOTSTRAP_ADMIN_PASSWORD",
    "INTERNAL_CLIENT_SECRET",
    "USER_SERVICE_JWT_PRIVATE_KEY",
    "FILE_MANAGER_SIGNING_KEY",
    "JOB_PROCESSOR_INTERNAL_CLIENT_SECRET",
    "USER_SERVICE_CLIENT_SECRETS",
}
PEER_URLS = {
    "GATEWAY_URL": "http://gateway:8000",
    "USER_SERVICE_URL": "http://user_service:8001",
    "SERVICE_REGISTRY_URL": "http://service_registry:8002",
    "JOB_PROCESSOR_URL": "http://job_processor:8003",
    "FILE_MANAGER_URL": "http://file_manager:8004",
    "NOTIFICATION_URL": "http://notification:8005",
    "MONITORING_URL": "http://monitoring:8006",
    "DJANGO_URL": "http://django:8010",
}
SECRET_NAME = re.compile(r"PASSWORD|SECRET|_KEY$|TOKEN")
# ${VAR:?message}: compose stops when VAR is unset or empty. ${VAR:-}: optional and empty by default.
REQUIRED_REFERENCE = re.compile(r"\$\{(?P<name>[A-Z][A-Z0-9_]*):\?[^}]+\}")
EMPTY_DEFAULT_REFERENCE = re.compile(r"\$\{[A-Z][A-Z0-9_]*:-\}")
# A ${...} reference, not the $${...} escape that reaches the container's shell.
VARIABLE_REFERENCE = re.compile(r"(?<!\$)\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)")
# Any ${...} reference, with its optional :-default, :? message, - or ? form.
ANY_REFERENCE = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<rest>[^}]*))?\}")


def resolve_defaults(text: str) -> str:
    """`text` as compose would interpolate it from an empty environment, required values shown as <required>."""

    def value(match: re.Match[str]) -> str:
        return "<required>" if match["op"] and match["op"].endswith("?") else match["rest"] or ""

    return ANY_REFERENCE.sub(value, text)


def load_compose() -> dict[str, Any]:
    """The compose file as compose sees it before interpolation (YAML anchors and merge keys resolved)."""
    return yaml.safe_load(COMPOSE_FILE.read_text())


def env_example() -> dict[str, str]:
    """The KEY=value lines of the example env file."""
    values: dict[str, str] = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, sep, value = line.partition("=")
            assert sep == "=", f"not a KEY=value line: {line!r}"
            values[key.strip()] = value.strip()
    return values


def compose_command() -> list[str]:
    """docker-compose (v1, as Debian packages it) or the docker compose plugin; skip when neither is there."""
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True, check=False)
        if probe.returncode == 0:
            return ["docker", "compose"]
    pytest.skip("neither docker-compose nor the docker compose plugin is installed (apt-get install docker-compose)")


def run_compose_config(secrets: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`config -q` on the compose file with the example env file, plus `secrets` in the process environment."""
    env = {key: value for key, value in os.environ.items() if key not in REQUIRED_SECRETS}
    env.update(secrets)
    return subprocess.run(
        [
            *compose_command(),
            "-f",
            str(COMPOSE_FILE),
            "--env-file",
            str(ENV_EXAMPLE),
            "config",
            "-q",
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def dummy_secrets() -> dict[str, str]:
    return {name: f"test-{name.lower()}" for name in REQUIRED_SECRETS}


# --- compose: validation -----------------------------------------------------------------------------------


def test_compose_config_is_valid_with_the_example_env_file_and_secrets() -> None:
    result = run_compose_config(dummy_secrets())
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("missing", sorted(REQUIRED_SECRETS))
def test_compose_refuses_to_run_without_each_secret(missing: str) -> None:
    secrets = dummy_secrets()
    del secrets[missing]
    result = run_compose_config(secrets)
    assert result.returncode != 0
    assert f"set {missing} in .env.microservices" in result.stderr


# --- compose: structure ------------------------------------------------------------------------------------


def test_compose_defines_exactly_the_platform_components() -> None:
    assert set(load_compose()["services"]) == ALL_SERVICES


def test_python_components_run_the_documented_commands_from_one_image() -> None:
    services = load_compose()["services"]
    for name, (command, _port) in HTTP_SERVICES.items():
        assert services[name]["command"] == command, name
    for name, command in WORKERS.items():
        assert services[name]["command"] == command, name
    assert services["migrate"]["command"] == MIGRATE_COMMAND
    images = {services[name]["image"] for name in PYTHON_SERVICES | {"migrate"}}
    assert images == {"${APP_IMAGE:-federated-imputation:latest}"}
    assert services["migrate"]["build"] == {"context": ".", "dockerfile": "Dockerfile"}


def test_every_python_service_has_a_healthcheck() -> None:
    services = load_compose()["services"]
    for name, (_command, port) in HTTP_SERVICES.items():
        probe = f"import urllib.request; urllib.request.urlopen('http://127.0.0.1:{port}/health', timeout=5)"
        assert services[name]["healthcheck"]["test"] == ["CMD", "python", "-c", probe], name
    # Each worker pings its own node, named as its command names it (--hostname <pool>@%h).
    for name, app, pool in (
        ("job-worker", "microservices.job_processor.worker", "jobs"),
        ("django-worker", "federated_imputation", "django"),
    ):
        assert services[name]["healthcheck"]["test"] == [
            "CMD-SHELL",
            f"celery -A {app} inspect ping --destination {pool}@$${{HOSTNAME}} --timeout 10",
        ], name
        assert services[name]["command"].endswith(f"--hostname {pool}@%h"), name
    # Beat answers no ping; it rewrites its schedule file every 3 minutes (celery's PersistentScheduler).
    assert services["job-beat"]["healthcheck"]["test"] == [
        "CMD",
        "python",
        "-c",
        "import glob, os, sys, time; files = glob.glob('/tmp/celerybeat-schedule*'); "
        "sys.exit(0 if files and time.time() - max(map(os.path.getmtime, files)) < 600 else 1)",
    ]
    assert services["postgres"]["healthcheck"]["test"] == [
        "CMD-SHELL",
        'pg_isready -h 127.0.0.1 -U "$${POSTGRES_USER}" -d postgres',
    ]
    assert services["redis"]["healthcheck"]["test"] == ["CMD-SHELL", "redis-cli ping | grep -q PONG"]
    assert services["nginx"]["healthcheck"]["test"] == [
        "CMD",
        "curl",
        "-fsS",
        "-o",
        "/dev/null",
        "http://127.0.0.1/nginx-health",
    ]


def test_depends_on_waits_for_health_and_for_the_migration() -> None:
    services = load_compose()["services"]
    for name, service in services.items():
        for dependency, spec in service.get("depends_on", {}).items():
            if dependency in {"postgres", "redis"}:
                assert spec == {"condition": "service_healthy"}, (name, dependency)
            if dependency == "migrate":
                assert spec == {"condition": "service_completed_successfully"}, name
    for name in PYTHON_SERVICES:
        assert services[name]["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}, name
        assert services[name]["depends_on"]["postgres"] == {"condition": "service_healthy"}, name
        assert services[name]["depends_on"]["redis"] == {"condition": "service_healthy"}, name
    assert set(services["migrate"]["depends_on"]) == {"postgres", "redis"}
    assert services["migrate"]["restart"] == "no"
    assert services["nginx"]["depends_on"] == {
        "gateway": {"condition": "service_healthy"},
        "django": {"condition": "service_healthy"},
        "frontend": {"condition": "service_completed_successfully"},
    }


def test_python_services_get_the_platform_settings() -> None:
    services = load_compose()["services"]
    for name in PYTHON_SERVICES | {"migrate"}:
        env = services[name]["environment"]
        assert env["ENVIRONMENT"] == "${ENVIRONMENT:-production}", name
        assert env["DATABASE_URL"] == (
            "postgresql://${POSTGRES_USER:-imputation}:"
            "${POSTGRES_PASSWORD:?set POSTGRES_PASSWORD in .env.microservices}@postgres:5432/postgres"
        ), name
        assert env["REDIS_URL"] == "redis://redis:6379", name
        assert env["FORWARDED_ALLOW_IPS"] == "*", name
        assert {key: env[key] for key in PEER_URLS} == PEER_URLS, name
    for name in HTTP_SERVICES:
        assert services[name]["environment"][f"{name.upper()}_HOST"] == "0.0.0.0", name
        assert services[name]["expose"] == [str(HTTP_SERVICES[name][1])], name
    notification = services["notification"]["environment"]
    assert notification["SMTP_HOST"] == "${SMTP_HOST:-mailpit}"
    assert notification["SMTP_PORT"] == "${SMTP_PORT:-1025}"


def test_file_storage_volume_is_shared_by_file_manager_and_job_worker() -> None:
    compose = load_compose()
    services = compose["services"]
    for name in ("file_manager", "job-worker"):
        assert "file_storage:/data/files" in services[name]["volumes"], name
        assert services[name]["environment"]["FILE_MANAGER_STORAGE_DIR"] == "/data/files", name
    assert "django_static:/data/static" in services["migrate"]["volumes"]
    assert "django_static:/data/static:ro" in services["django"]["volumes"]
    assert set(compose["volumes"]) == {"postgres_data", "redis_data", "file_storage", "django_static", "frontend_dist"}
    assert services["postgres"]["volumes"] == [
        "postgres_data:/var/lib/postgresql/data",
        "./scripts/init-databases.sh:/docker-entrypoint-initdb.d/10-init-databases.sh:ro",
    ]


def test_no_service_has_a_hard_coded_credential() -> None:
    required_seen: set[str] = set()
    for name, service in load_compose()["services"].items():
        env = service.get("environment", {})
        assert isinstance(env, dict), f"{name}: environment must be a mapping"
        for key, value in env.items():
            text = str(value)
            if SECRET_NAME.search(key):
                required = REQUIRED_REFERENCE.fullmatch(text)
                assert required or EMPTY_DEFAULT_REFERENCE.fullmatch(text), f"{name}: {key}={text}"
                if required:
                    assert required["name"] == key, f"{name}: {key} reads {required['name']}"
                    required_seen.add(key)
            if "://" in text:
                password = urlsplit(resolve_defaults(text)).password
                assert password in {None, "<required>"}, f"{name}: {key} embeds a password"
    assert required_seen == REQUIRED_SECRETS


# --- the example env file ----------------------------------------------------------------------------------


def test_env_example_lists_exactly_the_variables_compose_reads() -> None:
    referenced = {match["name"] for match in VARIABLE_REFERENCE.finditer(COMPOSE_FILE.read_text())}
    assert set(env_example()) == referenced


def test_env_example_holds_no_credentials_and_documents_every_variable() -> None:
    values = env_example()
    for name in REQUIRED_SECRETS | {"SMTP_USERNAME", "SMTP_PASSWORD"}:
        assert values[name] == "", name
    # Every variable, or group of adjacent variables, sits right under a comment saying what it is.
    previous = ""
    for line in ENV_EXAMPLE.read_text().splitlines():
        is_variable = bool(line) and not line.startswith("#")
        if is_variable:
            assert previous.startswith("#") or previous == "variable", line
            previous = "variable"
        else:
            previous = line
    text = ENV_EXAMPLE.read_text()
    assert "Fernet.generate_key()" in text
    assert text.count("REQUIRED.") == len(REQUIRED_SECRETS)


# --- nginx -------------------------------------------------------------------------------------------------


def nginx_binary() -> str:
    found = shutil.which("nginx") or next(
        (path for path in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if Path(path).exists()), None
    )
    if found is None:
        pytest.skip("nginx is not installed (apt-get install nginx-light)")
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def substitute(pattern: str, replacement: str, text: str, *, count: int) -> str:
    """re.subn that insists on `count` replacements, so a reshaped nginx.conf fails loudly here."""
    result, made = re.subn(pattern, replacement, text, flags=re.MULTILINE)
    assert made == count, f"{pattern!r} matched {made} times, expected {count}"
    return result


def local_nginx_conf(tmp_path: Path, *, listen_port: int, upstream_ports: dict[str, int], html_root: Path) -> Path:
    """A copy of nginx.conf that runs unprivileged here: local upstreams, port, root, logs and temp dirs."""
    text = NGINX_CONF.read_text()
    for host, port in upstream_ports.items():
        text = substitute(rf"^(\s*server\s+){re.escape(host)}:\d+;", rf"\g<1>127.0.0.1:{port};", text, count=1)
    text = substitute(r"^(\s*listen\s+)80\b", rf"\g<1>127.0.0.1:{listen_port}", text, count=1)
    text = substitute(r"^(\s*root\s+)/usr/share/nginx/html;", rf"\g<1>{html_root};", text, count=1)
    text = substitute(r"/dev/stderr", str(tmp_path / "error.log"), text, count=1)
    text = substitute(r"/dev/stdout", str(tmp_path / "access.log"), text, count=1)
    text = substitute(
        r"^http \{",
        f"http {{\n    client_body_temp_path {tmp_path}/body;\n    proxy_temp_path {tmp_path}/proxy;",
        text,
        count=1,
    )
    conf = tmp_path / "nginx.conf"
    conf.write_text(text)
    return conf


def nginx_args(tmp_path: Path, conf: Path) -> list[str]:
    return [
        nginx_binary(),
        "-p",
        str(tmp_path),
        "-c",
        str(conf),
        "-e",
        str(tmp_path / "error.log"),
        # One process under the caller's user, so no worker switches to an account that cannot read tmp_path.
        "-g",
        f"pid {tmp_path}/nginx.pid; daemon off; master_process off;",
    ]


def test_nginx_accepts_the_config(tmp_path: Path) -> None:
    conf = local_nginx_conf(
        tmp_path,
        listen_port=free_port(),
        upstream_ports={"gateway": 8000, "django": 8010},
        html_root=tmp_path,
    )
    result = subprocess.run(
        [*nginx_args(tmp_path, conf), "-t"], capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "test is successful" in result.stderr


class RecordingHandler(BaseHTTPRequestHandler):
    """A stub upstream: records each request and answers with a JSON summary of it."""

    protocol_version = "HTTP/1.1"
    upstream = "?"
    seen: list[dict[str, Any]]

    def handle_any(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        received = 0
        while received < length:
            chunk = self.rfile.read(min(65536, length - received))
            if not chunk:
                break
            received += len(chunk)
        record = {
            "upstream": self.upstream,
            "method": self.command,
            "path": self.path,
            "headers": dict(self.headers.items()),
            "body_bytes": received,
        }
        self.seen.append(record)
        body = json.dumps(record).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        # nginx must replace this with its own single value.
        self.send_header("X-Frame-Options", "SAMEORIGIN")
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_DELETE = handle_any

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def stub_upstream(name: str) -> Iterator[tuple[int, list[dict[str, Any]]]]:
    seen: list[dict[str, Any]] = []
    handler = type(f"{name}Handler", (RecordingHandler,), {"upstream": name, "seen": seen})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], seen
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def running_nginx(tmp_path: Path, conf: Path, port: int) -> Iterator[None]:
    process = subprocess.Popen(nginx_args(tmp_path, conf), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 10
        while True:
            if process.poll() is not None:
                output = process.stdout.read().decode() if process.stdout else ""
                pytest.fail(f"nginx exited: {output}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail("nginx did not start listening")
                time.sleep(0.05)
        yield
    finally:
        process.terminate()
        process.wait(timeout=10)
        if process.stdout:
            process.stdout.close()


def request(
    port: int, method: str, path: str, *, headers: dict[str, str] | None = None, body: bytes | None = None
) -> tuple[http.client.HTTPResponse, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.request(method, path, body=body, headers=headers or {})
    response = connection.getresponse()
    data = response.read()
    connection.close()
    return response, data


def test_nginx_routes_streams_and_guards(tmp_path: Path) -> None:
    nginx_binary()
    html = tmp_path / "html"
    (html / "assets").mkdir(parents=True)
    (html / "index.html").write_text("<!doctype html><title>app</title>")
    (html / "assets" / "app-1a2b3c.js").write_text("console.log('app')")
    port = free_port()
    with stub_upstream("gateway") as (gateway_port, gateway_seen), stub_upstream("django") as (django_port, _):
        conf = local_nginx_conf(
            tmp_path,
            listen_port=port,
            upstream_ports={"gateway": gateway_port, "django": django_port},
            html_root=html,
        )
        with running_nginx(tmp_path, conf, port):
            # /api/ keeps its prefix, gets a fresh request id, and uses upstream keepalive (no Connection header).
            response, data = request(port, "GET", "/api/jobs?page=2")
            seen = json.loads(data)
            assert response.status == 200
            assert (seen["upstream"], seen["path"]) == ("gateway", "/api/jobs?page=2")
            assert re.fullmatch(r"[0-9a-f]{32}", seen["headers"]["X-Request-ID"])
            assert "Connection" not in seen["headers"]
            assert seen["headers"]["X-Forwarded-Proto"] == "http"
            assert response.headers.get_all("X-Frame-Options") == ["DENY"]
            assert response.headers["X-Content-Type-Options"] == "nosniff"
            assert response.headers["Content-Security-Policy"] is None

            # The caller's own X-Forwarded-For is replaced by its address: the services behind trust this header.
            _, data = request(port, "GET", "/api/services", headers={"X-Forwarded-For": "6.6.6.6"})
            assert json.loads(data)["headers"]["X-Forwarded-For"] == "127.0.0.1"

            # A caller's request id is passed through untouched.
            _, data = request(port, "GET", "/api/services", headers={"X-Request-ID": "trace-abc-123"})
            assert json.loads(data)["headers"]["X-Request-ID"] == "trace-abc-123"

            # Uploads have no size limit (nginx's default is 1 MiB) and reach the gateway whole.
            upload = b"\x1f\x8b" + b"v" * (3 * 1024 * 1024)
            response, data = request(
                port, "POST", "/api/files/upload", body=upload, headers={"Content-Type": "application/gzip"}
            )
            assert response.status == 200
            assert json.loads(data)["body_bytes"] == len(upload)

            # WebSocket upgrade headers reach the gateway, which proxies /ws to the notification service.
            _, data = request(
                port, "GET", "/ws/notifications", headers={"Upgrade": "websocket", "Connection": "Upgrade"}
            )
            seen = json.loads(data)
            assert (seen["upstream"], seen["path"]) == ("gateway", "/ws/notifications")
            assert (seen["headers"]["Upgrade"], seen["headers"]["Connection"]) == ("websocket", "upgrade")

            for path in ("/admin/login/?next=/admin/", "/static/admin/css/base.css"):
                _, data = request(port, "GET", path)
                assert (json.loads(data)["upstream"], json.loads(data)["path"]) == ("django", path)

            # The front end: files as they are, any other path falls back to index.html for the SPA router.
            for path in ("/", "/jobs/42", "/services/michigan/panels"):
                response, data = request(port, "GET", path)
                assert (response.status, data) == (200, b"<!doctype html><title>app</title>"), path
                assert response.headers["Cache-Control"] == "no-cache", path
                assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"], path
            response, data = request(port, "GET", "/assets/app-1a2b3c.js")
            assert (response.status, data) == (200, b"console.log('app')")
            assert response.headers["Cache-Control"] == "max-age=315360000"
            response, _ = request(port, "GET", "/assets/missing.js")
            assert response.status == 404

            response, data = request(port, "GET", "/nginx-health")
            assert (response.status, data) == (200, b"ok\n")
    assert len(gateway_seen) == 5
