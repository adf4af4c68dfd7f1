"""The gateway's own work: the dashboard aggregated from several services, and the merged OpenAPI document."""

from __future__ import annotations

import asyncio
import copy
import logging
import time
from typing import Any

import httpx

from microservices.gateway.routing import SERVICE_LABELS, gateway_path
from microservices.gateway.schemas import DashboardRead, JobStats, ServiceStats

logger = logging.getLogger(__name__)

RECENT_JOBS = 5
# Job states counted as "running" on the dashboard: every state a job can still move on from.
LIVE_STATES = ("pending", "queued", "submitting", "running", "downloading")
HTTP_METHODS = frozenset({"get", "put", "post", "delete", "patch", "head", "options", "trace"})


class Unavailable(Exception):
    """A part of an aggregate whose service did not answer usefully."""


async def fetch_json(*, http: httpx.AsyncClient, url: str, headers: dict[str, str], timeout_s: float) -> Any:
    """The JSON body of a GET; Unavailable on a transport error, a timeout, or any status but 200."""
    try:
        response = await http.get(url, headers=headers, timeout=timeout_s)
    except httpx.HTTPError as exc:
        raise Unavailable(f"{url}: {type(exc).__name__}") from exc
    if response.status_code != 200:
        raise Unavailable(f"{url}: HTTP {response.status_code}")
    try:
        return response.json()
    except ValueError as exc:
        raise Unavailable(f"{url}: not JSON") from exc


def job_stats_from(*, total: int, completed: int, running: int, failed: int) -> JobStats:
    """Job counts with the success rate: completed among finished (completed or failed) jobs, in percent."""
    finished = completed + failed
    rate = round(100.0 * completed / finished, 1) if finished else 0.0
    return JobStats(total=total, completed=completed, running=running, failed=failed, success_rate=rate)


def service_stats_from(body: dict[str, Any]) -> ServiceStats:
    """Counts of the registry's services by availability and health."""
    items = body.get("items") or []
    available = sum(1 for s in items if s.get("is_available"))
    return ServiceStats(
        total=int(body.get("total", len(items))),
        available=available,
        unavailable=len(items) - available,
        healthy=sum(1 for s in items if s.get("health_status") == "healthy"),
    )


async def build_dashboard(
    *, http: httpx.AsyncClient, upstreams: dict[str, str], authorization: str, timeout_s: float
) -> DashboardRead:
    """The dashboard from the job processor, registry, notification and monitoring services, asked concurrently.

    Job counts are the totals of the job processor's own list (the caller's jobs; an admin's are everyone's).
    """
    headers = {"Authorization": authorization}
    one = "page=1&page_size=1"
    calls = {
        "jobs": ("job_processor", f"/jobs?page=1&page_size={RECENT_JOBS}"),
        "completed": ("job_processor", f"/jobs?status=completed&{one}"),
        "running": ("job_processor", "/jobs?" + "".join(f"status={s}&" for s in LIVE_STATES) + one),
        "failed": ("job_processor", f"/jobs?status=failed&{one}"),
        "services": ("service_registry", "/services?page=1&page_size=100"),
        "notifications": ("notification", "/notifications/unread-count"),
        "system_stats": ("monitoring", "/dashboard/stats"),
    }
    results = await asyncio.gather(
        *(
            fetch_json(http=http, url=upstreams[service] + path, headers=headers, timeout_s=timeout_s)
            for service, path in calls.values()
        ),
        return_exceptions=True,
    )
    parts: dict[str, Any] = {}
    unavailable: set[str] = set()
    for (part, (service, _)), result in zip(calls.items(), results, strict=True):
        if isinstance(result, BaseException):
            logger.info("dashboard part %s unavailable: %s", part, result)
            unavailable.add(service)
        else:
            parts[part] = result
    job_counts = ("jobs", "completed", "running", "failed")
    job_stats = JobStats()
    if all(name in parts for name in job_counts):
        total, completed, running, failed = (int(parts[name].get("total") or 0) for name in job_counts)
        job_stats = job_stats_from(total=total, completed=completed, running=running, failed=failed)
    return DashboardRead(
        job_stats=job_stats,
        service_stats=service_stats_from(parts["services"]) if "services" in parts else ServiceStats(),
        recent_jobs=list((parts.get("jobs") or {}).get("items") or [])[:RECENT_JOBS],
        notifications=parts.get("notifications"),
        system_stats=parts.get("system_stats"),
        unavailable=sorted(unavailable),
    )


def merge_openapi(*, own: dict[str, Any], documents: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """One OpenAPI document: the gateway's own paths and each service's public paths as the gateway exposes them."""
    merged = copy.deepcopy(own)
    merged["info"] = {
        **merged.get("info", {}),
        "title": "Federated Imputation Platform API",
        "description": "The public API, as served by the gateway under /api.",
    }
    paths: dict[str, Any] = {p: v for p, v in merged.get("paths", {}).items() if p.startswith("/api/")}
    schemas: dict[str, Any] = dict(merged.get("components", {}).get("schemas", {}))
    for service, document in documents.items():
        service_schemas = document.get("components", {}).get("schemas", {})
        renamed = {name: name for name in service_schemas}
        for name, schema in service_schemas.items():
            # Two services may both call something `Page`; when they differ, the later one is prefixed.
            if name in schemas and schemas[name] != schema:
                renamed[name] = f"{service}__{name}"
            schemas[renamed[name]] = schema
        for path, operations in document.get("paths", {}).items():
            public = gateway_path(service, path)
            if public is None:
                continue
            item = {}
            for method, operation in operations.items():
                if method in HTTP_METHODS:
                    operation = {**operation, "tags": operation.get("tags") or [SERVICE_LABELS[service]]}
                item[method] = operation
            paths[public] = _rename_refs(item, renamed)
    merged["paths"] = dict(sorted(paths.items()))
    merged.setdefault("components", {})["schemas"] = schemas
    merged["servers"] = [{"url": "/"}]
    return merged


def _rename_refs(value: Any, renamed: dict[str, str]) -> Any:
    prefix = "#/components/schemas/"
    if isinstance(value, dict):
        return {
            k: (prefix + renamed.get(v[len(prefix) :], v[len(prefix) :]))
            if k == "$ref" and isinstance(v, str) and v.startswith(prefix)
            else _rename_refs(v, renamed)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_rename_refs(v, renamed) for v in value]
    return value


class OpenAPICache:
    """The merged document, rebuilt at most once a minute; services that do not answer are left out."""

    def __init__(self, *, ttl_s: float = 60.0) -> None:
        self.ttl_s = ttl_s
        self._document: dict[str, Any] | None = None
        self._built_at = 0.0
        self._lock = asyncio.Lock()

    async def get(
        self, *, http: httpx.AsyncClient, upstreams: dict[str, str], own: dict[str, Any], timeout_s: float
    ) -> dict[str, Any]:
        """The merged document, fetched anew when the cached one is older than the TTL."""
        async with self._lock:
            if self._document is not None and time.monotonic() - self._built_at < self.ttl_s:
                return self._document
            names = list(upstreams)
            results = await asyncio.gather(
                *(
                    fetch_json(http=http, url=f"{upstreams[n]}/openapi.json", headers={}, timeout_s=timeout_s)
                    for n in names
                ),
                return_exceptions=True,
            )
            documents = {n: r for n, r in zip(names, results, strict=True) if isinstance(r, dict)}
            self._document = merge_openapi(own=own, documents=documents)
            # A partial document is kept only briefly, so a service that comes back appears soon.
            self._built_at = time.monotonic() - (0 if len(documents) == len(names) else self.ttl_s * 0.9)
            return self._document
