"""The local run: embedded PostgreSQL and Redis when none is configured, databases, migrations, every process.

Started by `scripts/run.sh`; stops everything on Ctrl-C or SIGTERM. Data lives under var/ and is reused.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from microservices.common.localinfra import EmbeddedPostgres, EmbeddedRedis  # noqa: E402
from microservices.common.processes import (  # noqa: E402
    Component,
    Supervisor,
    component_env,
    platform_components,
    port_env_name,
)
from microservices.common.settings import DEFAULT_PORTS  # noqa: E402

VAR = Path(os.environ.get("VAR_DIR", ROOT / "var")).resolve()
LOG_DIR = VAR / "log"
SECRETS_FILE = VAR / "development-secrets.env"


def say(message: str) -> None:
    print(f"[run] {message}", flush=True)


def development_secrets() -> dict[str, str]:
    """Secrets for the local run: made once, kept in var/, never fixed in code."""
    values: dict[str, str] = {}
    if SECRETS_FILE.exists():
        for line in SECRETS_FILE.read_text().splitlines():
            key, _, value = line.partition("=")
            if key and not key.startswith("#"):
                values[key] = value
    from cryptography.fernet import Fernet

    wanted = {
        "FERNET_KEY": lambda: Fernet.generate_key().decode(),
        "DJANGO_SECRET_KEY": lambda: secrets.token_urlsafe(48),
        "BOOTSTRAP_ADMIN_PASSWORD": lambda: secrets.token_urlsafe(12),
        "INTERNAL_CLIENT_SECRET": lambda: secrets.token_urlsafe(32),
    }
    changed = False
    for key, make in wanted.items():
        if not values.get(key):
            values[key] = make()
            changed = True
    if changed:
        SECRETS_FILE.parent.mkdir(parents=True, exist_ok=True)
        SECRETS_FILE.write_text(
            "# Development secrets of the local run, made by scripts/run.py. Not for production.\n"
            + "".join(f"{k}={v}\n" for k, v in values.items())
        )
        SECRETS_FILE.chmod(0o600)
    return values


def build_frontend(env: dict[str, str]) -> Path | None:
    """Builds frontend/dist when npm is here and the sources are newer; returns it when there is one to serve."""
    frontend = ROOT / "frontend"
    dist = frontend / "dist"
    if not (frontend / "package.json").exists():
        return None
    sources = [frontend / name for name in ("index.html", "package-lock.json", "vite.config.ts")]
    sources += [path for path in (frontend / "src").rglob("*") if path.is_file()]
    newest = max((path.stat().st_mtime for path in sources if path.exists()), default=0.0)
    built = dist / "index.html"
    if shutil.which("npm") and (not built.exists() or built.stat().st_mtime < newest):
        say("building the front end (npm run build)")
        steps = [] if (frontend / "node_modules").exists() else [["npm", "ci", "--no-audit", "--no-fund"]]
        for argv in [*steps, ["npm", "run", "build"]]:
            result = subprocess.run(argv, env=env, cwd=frontend, capture_output=True, text=True)
            if result.returncode != 0:
                sys.stderr.write(result.stdout[-4000:] + result.stderr[-4000:])
                say("the front end did not build; the API runs without it")
                break
    return dist if built.exists() else None


def run_step(env: dict[str, str], *argv: str) -> None:
    result = subprocess.run(argv, env=env, cwd=ROOT, capture_output=True, text=True)
    if result.returncode != 0:
        sys.stderr.write(result.stdout + result.stderr)
        raise SystemExit(f"[run] failed: {' '.join(argv)}")


def wait_overall_healthy(url: str, *, timeout_s: float) -> bool:
    """Wait until monitoring sees every component healthy (Celery workers included); say which are not."""
    import httpx

    deadline = time.monotonic() + timeout_s
    unhealthy: list[str] = []
    while time.monotonic() < deadline:
        try:
            body = httpx.get(url, timeout=10).json()
        except (httpx.HTTPError, ValueError):
            time.sleep(0.5)
            continue
        unhealthy = [f"{c['service_name']} ({c.get('error')})" for c in body["services"] if c["status"] != "healthy"]
        if not unhealthy:
            return True
        time.sleep(0.5)
    say(f"still not healthy after {timeout_s:g} s: {', '.join(unhealthy)}; see {LOG_DIR}")
    return False


def main() -> int:
    started = time.monotonic()
    env = dict(os.environ)
    env.setdefault("ENVIRONMENT", "development")
    env.setdefault("VAR_DIR", str(VAR))
    env.setdefault("LOG_JSON", "true")
    ports = {name: int(env.get(port_env_name(name), default)) for name, default in DEFAULT_PORTS.items()}
    env.update({k: v for k, v in component_env(ports).items() if k not in os.environ})

    postgres = redis_server = None
    if not env.get("DATABASE_URL"):
        postgres = EmbeddedPostgres(VAR / "postgres", port=int(env.get("LOCAL_POSTGRES_PORT", "54329")))
        say(f"starting embedded PostgreSQL on port {postgres.port} (data in {postgres.data_dir})")
        env["DATABASE_URL"] = postgres.start()
    if not env.get("REDIS_URL"):
        redis_server = EmbeddedRedis(VAR / "redis", port=int(env.get("LOCAL_REDIS_PORT", "63799")))
        say(f"starting embedded Redis on port {redis_server.port}")
        env["REDIS_URL"] = redis_server.start()

    for key, value in development_secrets().items():
        env.setdefault(key, value)
    env.setdefault("BOOTSTRAP_ADMIN_USERNAME", "admin")
    env.setdefault("BOOTSTRAP_ADMIN_EMAIL", "admin@localhost")
    env.setdefault("DJANGO_STATIC_ROOT", str(VAR / "static"))

    # The gateway serves the built web UI at `/`, so the local run is the whole platform at one address.
    build_started = time.monotonic()
    frontend_dist = build_frontend(env)
    build_s = time.monotonic() - build_started
    if frontend_dist is not None:
        env.setdefault("GATEWAY_FRONTEND_DIR", str(frontend_dist))
    # E-mail goes to a local catcher (as Mailpit in compose) unless an SMTP server is configured: messages are
    # printed to var/log/smtp.log, and notification's /health has no reason to warn.
    extra_components = []
    if not env.get("SMTP_HOST"):
        smtp_port = env.get("LOCAL_SMTP_PORT", "1025")
        env.update({"SMTP_HOST": "127.0.0.1", "SMTP_PORT": smtp_port, "SMTP_USE_TLS": "false"})
        extra_components.append(
            Component(
                "smtp",
                (sys.executable, "-m", "aiosmtpd", "-n", "-l", f"127.0.0.1:{smtp_port}", "-c",
                 "aiosmtpd.handlers.Debugging"),
            )
        )  # fmt: skip

    supervisor = Supervisor(log_dir=LOG_DIR, env=env, cwd=ROOT)
    stopping = serving = False

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        if not serving:  # still starting: abandon the start-up and go straight to the clean stop
            raise KeyboardInterrupt

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        python = sys.executable
        say("creating databases and applying migrations")
        run_step(env, python, "-m", "microservices.common.migrate", "create-databases")
        run_step(env, python, "-m", "microservices.common.migrate", "upgrade")
        run_step(env, python, "manage.py", "migrate", "--noinput")
        run_step(env, python, "manage.py", "collectstatic", "--noinput")
        components = platform_components(ports, python=python)
        supervisor.start_all([*extra_components, *components])
        say(f"started {len(components) + len(extra_components)} processes; logs in {LOG_DIR}")
        supervisor.wait_healthy(components, timeout_s=90)
        healthy = wait_overall_healthy(f"http://127.0.0.1:{ports['monitoring']}/health/overall", timeout_s=60)
        elapsed = time.monotonic() - started - build_s
        built = f" (plus {build_s:.0f} s building the front end)" if build_s > 1 else ""
        say(f"{'every component is healthy' if healthy else 'serving, not all healthy'} after {elapsed:.1f} s{built}")
        print(
            f"""
  Web UI                   http://127.0.0.1:{ports["gateway"]}/{"" if frontend_dist else "  (not built: no npm)"}
  Platform (API gateway)   http://127.0.0.1:{ports["gateway"]}/api/docs
  Django admin             http://127.0.0.1:{ports["django"]}/admin/
  Health of everything     http://127.0.0.1:{ports["monitoring"]}/health/overall
  Admin account            {env["BOOTSTRAP_ADMIN_USERNAME"]} / {env["BOOTSTRAP_ADMIN_PASSWORD"]}  (development only)
  Logs                     {LOG_DIR}/<component>.log
  Press Ctrl-C to stop.
""",
            flush=True,
        )
        reported: set[str] = set()
        serving = True
        while not stopping:
            for name, code in supervisor.exited().items():
                if name not in reported:
                    reported.add(name)
                    say(f"{name} exited with code {code}; see {LOG_DIR / (name + '.log')}")
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        say("stopping")
        supervisor.stop_all()
        if redis_server is not None:
            redis_server.stop()
        if postgres is not None:
            postgres.stop()
        say("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
