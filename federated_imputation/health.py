"""`/health`: whether this component can reach its database and Redis."""

from __future__ import annotations

import time
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import redis
from django.conf import settings
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_safe

from federated_imputation.env import redis_url_with_db

SERVICE_NAME = "django"
REDIS_TIMEOUT_S = 2.0

try:
    VERSION = version("federated-imputation")
except PackageNotFoundError:  # running from a bare checkout
    VERSION = "0.0.0"


def _timed(check: Callable[[], None]) -> dict[str, Any]:
    """Run one check and describe its outcome; a health check reports failures, it never raises."""
    started = time.perf_counter()
    error: str | None = None
    try:
        check()
    except Exception as exc:
        # The first line is the useful one (psycopg2 adds hints on the next lines).
        error = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return {
        "status": "unhealthy" if error else "healthy",
        "response_time_ms": round((time.perf_counter() - started) * 1000, 2),
        "error": error,
    }


def check_database() -> None:
    """Raise unless the database answers `SELECT 1`."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


def check_redis() -> None:
    """Raise unless Redis answers PING within the timeout."""
    client = redis.Redis.from_url(
        redis_url_with_db(settings.REDIS_URL, settings.REDIS_CACHE_DB),
        socket_timeout=REDIS_TIMEOUT_S,
        socket_connect_timeout=REDIS_TIMEOUT_S,
    )
    try:
        client.ping()
    finally:
        client.close()


# Exempt so that a POST is told 405 by require_safe rather than 403 by the CSRF check.
@csrf_exempt
@require_safe
def health(request: HttpRequest) -> JsonResponse:
    """Report the component's health: 200 when every check passes, 503 otherwise."""
    checks = {"database": _timed(check_database), "redis": _timed(check_redis)}
    healthy = all(check["status"] == "healthy" for check in checks.values())
    return JsonResponse(
        {
            "status": "healthy" if healthy else "unhealthy",
            "service": SERVICE_NAME,
            "version": VERSION,
            "checks": checks,
        },
        status=200 if healthy else 503,
    )
