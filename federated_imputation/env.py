"""Reading the Django project's configuration from the environment.

Nothing here touches `django.conf.settings`, so the Celery app and the tests can use it before settings load.
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

from django.core.exceptions import ImproperlyConfigured

ENVIRONMENTS = ("development", "test", "production")
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379"
DEFAULT_DATABASE_SERVER_URL = "postgresql://postgres@127.0.0.1:5432/postgres"

_TRUE = {"1", "true", "yes", "on"}
_PLACEHOLDER_SECRETS = {
    "",
    "changeme",
    "change-me",
    "change_me",
    "changethis",
    "secret",
    "secretkey",
    "secret-key",
    "dev",
    "development",
    "test",
    "placeholder",
    "xxx",
}
_PLACEHOLDER_MARKERS = ("changeme", "change-me", "change_me", "changethis", "placeholder")


def env_str(name: str, default: str = "") -> str:
    """The variable's value stripped of surrounding blanks, or `default` when unset or blank."""
    value = os.environ.get(name, "").strip()
    return value or default


def env_bool(name: str, default: bool = False) -> bool:
    """True for 1/true/yes/on (any case), False for any other value, `default` when unset."""
    value = env_str(name)
    if not value:
        return default
    return value.lower() in _TRUE


def env_int(name: str, default: int) -> int:
    """The variable as an integer, refusing anything that is not one."""
    value = env_str(name)
    if not value:
        return default
    try:
        return int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, got {value!r}") from None


def env_list(name: str, default: list[str]) -> list[str]:
    """A comma-separated list, blanks dropped."""
    value = env_str(name)
    if not value:
        return list(default)
    return [item.strip() for item in value.split(",") if item.strip()]


def environment() -> str:
    """`ENVIRONMENT`: development (the default), test or production."""
    value = env_str("ENVIRONMENT", "development").lower()
    if value not in ENVIRONMENTS:
        raise ImproperlyConfigured(f"ENVIRONMENT must be one of {', '.join(ENVIRONMENTS)}, got {value!r}")
    return value


def is_placeholder_secret(value: str) -> bool:
    """Whether `value` is missing or one of the stand-ins people put in example files."""
    normalized = value.strip().lower()
    return (
        normalized in _PLACEHOLDER_SECRETS
        or normalized.startswith(("insecure", "django-insecure"))
        or any(marker in normalized for marker in _PLACEHOLDER_MARKERS)
    )


def database_settings(url: str, *, database_name: str | None = None) -> dict[str, Any]:
    """Django's DATABASES entry for a PostgreSQL URL, optionally naming another database on that server.

    Query parameters (`?sslmode=require`) become connection options.
    """
    parts = urlsplit(url)
    scheme = parts.scheme.split("+", 1)[0]
    if scheme not in ("postgres", "postgresql"):
        raise ImproperlyConfigured(f"database URL must be a postgresql:// URL, got scheme {parts.scheme!r}")
    options: dict[str, Any] = {"connect_timeout": 5}
    options.update(parse_qsl(parts.query))
    try:
        port = parts.port
    except ValueError:
        raise ImproperlyConfigured("database URL has an invalid port") from None
    name = database_name or unquote(parts.path.lstrip("/"))
    if not name:
        raise ImproperlyConfigured("database URL names no database")
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": name,
        "USER": unquote(parts.username or ""),
        "PASSWORD": unquote(parts.password or ""),
        "HOST": parts.hostname or "",
        "PORT": str(port) if port else "",
        "OPTIONS": options,
    }


def redis_url_with_db(url: str, db: int) -> str:
    """The Redis server URL `url` pointed at database `db` (path for redis://, query for unix://)."""
    parts = urlsplit(url)
    if parts.scheme == "unix":
        query = [(key, value) for key, value in parse_qsl(parts.query) if key != "db"]
        query.append(("db", str(db)))
        # Built by hand: urlunsplit would drop the empty host and write "unix:/path".
        return f"unix://{parts.netloc}{parts.path}?{urlencode(query)}"
    if parts.scheme not in ("redis", "rediss"):
        raise ImproperlyConfigured(f"REDIS_URL must be a redis://, rediss:// or unix:// URL, got {url!r}")
    return urlunsplit(parts._replace(path=f"/{db}"))


def redis_server_url() -> str:
    """`REDIS_URL`, the Redis server every use of Redis picks its database number on."""
    return env_str("REDIS_URL", DEFAULT_REDIS_URL)
