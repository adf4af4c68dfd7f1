"""The Django project's settings, read from the environment, each case in a fresh interpreter."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured

REPO = Path(__file__).resolve().parents[2]
STRONG_KEY = "k3J9xq2Lr8Vt5Wz1Nb7Hc4Md6Fg0Ps2Ye9Ua3Io5Qw8Er1Ty4Ui7Op0As3Df6Gh9"
PLATFORM_VARIABLES = (
    "ENVIRONMENT",
    "DATABASE_URL",
    "REDIS_URL",
    "SERVICE_REGISTRY_URL",
    "USER_SERVICE_URL",
    "LOG_LEVEL",
    "LOG_JSON",
)


def clean_env(**overrides: str) -> dict[str, str]:
    """This process's environment without any setting the project reads, plus `overrides`."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("DJANGO_") and key not in PLATFORM_VARIABLES
    }
    env["DJANGO_SETTINGS_MODULE"] = "federated_imputation.settings"
    env.update(overrides)
    return env


def setup_django(env: dict[str, str], *names: str) -> subprocess.CompletedProcess[str]:
    """Run `django.setup()` in a fresh interpreter and print the named settings as JSON."""
    code = (
        "import json, django; django.setup(); from django.conf import settings; "
        f"print(json.dumps({{n: getattr(settings, n) for n in {names!r}}}, default=str))"
    )
    return subprocess.run([sys.executable, "-c", code], env=env, cwd=REPO, capture_output=True, text=True, timeout=60)


def settings_of(env: dict[str, str], *names: str) -> dict[str, Any]:
    """The named settings under `env`, failing the test when the settings do not load."""
    result = setup_django(env, *names)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.mark.parametrize(
    "secret",
    [None, "", "CHANGEME", "dev", "insecure-dev-key", "django-insecure-abc", "x-changeme-x"],
)
def test_production_refuses_a_missing_or_placeholder_secret(secret: str | None) -> None:
    env = clean_env(ENVIRONMENT="production")
    if secret is not None:
        env["DJANGO_SECRET_KEY"] = secret

    result = setup_django(env, "SECRET_KEY")

    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.strip().splitlines()[-1] == (
        "django.core.exceptions.ImproperlyConfigured: DJANGO_SECRET_KEY is missing or a placeholder; "
        "set a long random value when ENVIRONMENT=production"
    )


def test_production_with_a_real_secret_passes_check_deploy() -> None:
    env = clean_env(ENVIRONMENT="production", DJANGO_SECRET_KEY=STRONG_KEY)

    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy"],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 0, result.stderr
    # Only the HTTPS-only hardening is left to the operator; key, DEBUG and headers pass.
    codes = sorted(line.split()[1] for line in result.stderr.splitlines() if line.startswith("?: ("))
    assert codes == ["(security.W004)", "(security.W008)", "(security.W012)", "(security.W016)"]


def test_production_https_settings_come_from_the_environment() -> None:
    env = clean_env(
        ENVIRONMENT="production",
        DJANGO_SECRET_KEY=STRONG_KEY,
        DJANGO_SESSION_COOKIE_SECURE="true",
        DJANGO_SECURE_SSL_REDIRECT="1",
        DJANGO_SECURE_HSTS_SECONDS="3600",
        DJANGO_SECURE_PROXY_SSL_HEADER="1",
    )

    assert settings_of(
        env,
        "SESSION_COOKIE_SECURE",
        "CSRF_COOKIE_SECURE",
        "SECURE_SSL_REDIRECT",
        "SECURE_HSTS_SECONDS",
        "SECURE_PROXY_SSL_HEADER",
        "X_FRAME_OPTIONS",
        "SECURE_CONTENT_TYPE_NOSNIFF",
    ) == {
        "SESSION_COOKIE_SECURE": True,
        "CSRF_COOKIE_SECURE": True,
        "SECURE_SSL_REDIRECT": True,
        "SECURE_HSTS_SECONDS": 3600,
        "SECURE_PROXY_SSL_HEADER": ["HTTP_X_FORWARDED_PROTO", "https"],
        "X_FRAME_OPTIONS": "DENY",
        "SECURE_CONTENT_TYPE_NOSNIFF": True,
    }


@pytest.mark.parametrize("environment", [None, "development", "test"])
def test_development_and_test_fall_back_to_the_fixed_development_key(environment: str | None) -> None:
    env = clean_env() if environment is None else clean_env(ENVIRONMENT=environment)

    result = setup_django(env, "SECRET_KEY")

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"SECRET_KEY": "django-insecure-development-only-do-not-use-in-production"}
    expected_environment = environment or "development"
    assert f"DJANGO_SECRET_KEY is missing or a placeholder: fine for {expected_environment} only" in result.stderr


def test_an_unknown_environment_is_refused() -> None:
    result = setup_django(clean_env(ENVIRONMENT="prod"), "DEBUG")

    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        "django.core.exceptions.ImproperlyConfigured: "
        "ENVIRONMENT must be one of development, test, production, got 'prod'"
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, False), ("", False), ("0", False), ("false", False), ("off", False), ("1", True), ("TRUE", True)],
)
def test_debug_is_off_unless_asked_for(value: str | None, expected: bool) -> None:
    env = clean_env() if value is None else clean_env(DJANGO_DEBUG=value)

    assert settings_of(env, "DEBUG") == {"DEBUG": expected}


def test_defaults_for_a_local_run() -> None:
    values = settings_of(
        clean_env(),
        "ALLOWED_HOSTS",
        "DATABASES",
        "CACHES",
        "CELERY_BROKER_URL",
        "CELERY_RESULT_BACKEND",
        "CELERY_TASK_DEFAULT_QUEUE",
        "STATIC_URL",
        "STATIC_ROOT",
        "SERVICE_REGISTRY_URL",
        "USER_SERVICE_URL",
        "LOG_JSON",
    )

    assert values == {
        "ALLOWED_HOSTS": ["localhost", "127.0.0.1", "[::1]"],
        "DATABASES": {
            "default": {
                "ENGINE": "django.db.backends.postgresql",
                "NAME": "federated_imputation",
                "USER": "postgres",
                "PASSWORD": "",
                "HOST": "127.0.0.1",
                "PORT": "5432",
                "OPTIONS": {"connect_timeout": 5},
                "CONN_MAX_AGE": 0,
                "CONN_HEALTH_CHECKS": True,
                "ATOMIC_REQUESTS": False,
                "AUTOCOMMIT": True,
                "TIME_ZONE": None,
                "TEST": {"CHARSET": None, "COLLATION": None, "MIGRATE": True, "MIRROR": None, "NAME": None},
            }
        },
        "CACHES": {
            "default": {
                "BACKEND": "django.core.cache.backends.redis.RedisCache",
                "LOCATION": "redis://127.0.0.1:6379/0",
                "KEY_PREFIX": "django",
            }
        },
        "CELERY_BROKER_URL": "redis://127.0.0.1:6379/1",
        "CELERY_RESULT_BACKEND": "redis://127.0.0.1:6379/1",
        "CELERY_TASK_DEFAULT_QUEUE": "django",
        "STATIC_URL": "/static/",
        "STATIC_ROOT": str(REPO / "var" / "static"),
        "SERVICE_REGISTRY_URL": "http://127.0.0.1:8002",
        "USER_SERVICE_URL": "http://127.0.0.1:8001",
        "LOG_JSON": True,
    }


def test_server_urls_get_our_database_and_redis_numbers() -> None:
    env = clean_env(
        DATABASE_URL="postgresql://app:p%40ss%2Fword@db.internal:6543/postgres?sslmode=require",
        REDIS_URL="redis://:secret@cache.internal:6380",
        DJANGO_ALLOWED_HOSTS="admin.example.org, localhost ,",
        DJANGO_STATIC_ROOT="/srv/static",
    )

    values = settings_of(env, "DATABASES", "CACHES", "CELERY_BROKER_URL", "ALLOWED_HOSTS", "STATIC_ROOT")

    database = values["DATABASES"]["default"]
    assert {key: database[key] for key in ("NAME", "USER", "PASSWORD", "HOST", "PORT", "OPTIONS")} == {
        "NAME": "federated_imputation",
        "USER": "app",
        "PASSWORD": "p@ss/word",
        "HOST": "db.internal",
        "PORT": "6543",
        "OPTIONS": {"connect_timeout": 5, "sslmode": "require"},
    }
    assert values["CACHES"]["default"]["LOCATION"] == "redis://:secret@cache.internal:6380/0"
    assert values["CELERY_BROKER_URL"] == "redis://:secret@cache.internal:6380/1"
    assert values["ALLOWED_HOSTS"] == ["admin.example.org", "localhost"]
    assert values["STATIC_ROOT"] == "/srv/static"


def test_django_database_url_is_used_as_given() -> None:
    env = clean_env(
        DATABASE_URL="postgresql://app@db.internal:5432/postgres",
        DJANGO_DATABASE_URL="postgres://admin:pw@other-db:5433/legacy_admin",
    )

    database = settings_of(env, "DATABASES")["DATABASES"]["default"]

    assert {key: database[key] for key in ("NAME", "USER", "PASSWORD", "HOST", "PORT")} == {
        "NAME": "legacy_admin",
        "USER": "admin",
        "PASSWORD": "pw",
        "HOST": "other-db",
        "PORT": "5433",
    }


def test_env_helpers(monkeypatch: pytest.MonkeyPatch) -> None:
    # Importing the package creates the Celery app, which would otherwise set this for the whole session.
    monkeypatch.setenv("DJANGO_SETTINGS_MODULE", "federated_imputation.settings")
    from federated_imputation.env import database_settings, is_placeholder_secret, redis_url_with_db

    assert redis_url_with_db("unix:///var/run/redis.sock?db=4&socket_timeout=1", 1) == (
        "unix:///var/run/redis.sock?socket_timeout=1&db=1"
    )
    assert redis_url_with_db("rediss://cache:6380/7", 0) == "rediss://cache:6380/0"
    assert database_settings("postgresql+asyncpg://u@h/x", database_name="federated_imputation")["NAME"] == (
        "federated_imputation"
    )
    assert is_placeholder_secret(STRONG_KEY) is False
    with pytest.raises(ImproperlyConfigured, match="must be a postgresql:// URL, got scheme 'mysql'"):
        database_settings("mysql://u@h/x")
    with pytest.raises(ImproperlyConfigured, match="REDIS_URL must be a redis://"):
        redis_url_with_db("http://cache:6379", 0)
