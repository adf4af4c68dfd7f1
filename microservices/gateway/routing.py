"""The public API's routing table (DESIGN.md, "The public API"): which service owns a gateway path, and as what path.

Matching is one dictionary look-up on the first segment after `/api/`, so it costs the same for every route.
"""

from __future__ import annotations

from dataclasses import dataclass

API_PREFIX = "/api"

# First path segment after /api → owning service. `/api/monitoring/...` is the one prefix stripped whole.
SEGMENT_OWNERS: dict[str, str] = {
    "auth": "user_service",
    "users": "user_service",
    "groups": "user_service",
    "tokens": "user_service",
    "audit": "user_service",
    ".well-known": "user_service",
    "services": "service_registry",
    "reference-panels": "service_registry",
    "jobs": "job_processor",
    "templates": "job_processor",
    "files": "file_manager",
    "notifications": "notification",
    "monitoring": "monitoring",
}

# Upstream paths anyone may call without a token: the ways to get one, and the keys to check one.
PUBLIC_PATHS = frozenset(
    {
        "/auth/login",
        "/auth/register",
        "/auth/refresh",
        "/auth/token",
        "/auth/logout",
        "/.well-known/jwks.json",
    }
)

# Human names for error sentences ("The file manager service is unavailable.").
SERVICE_LABELS: dict[str, str] = {
    "user_service": "user service",
    "service_registry": "service registry",
    "job_processor": "job processor",
    "file_manager": "file manager",
    "notification": "notification service",
    "monitoring": "monitoring service",
}


@dataclass(frozen=True, slots=True)
class RouteMatch:
    """Where a gateway path goes: the service, the path there, and the route template for metrics."""

    service: str
    upstream_path: str
    template: str
    public: bool
    # How many leading characters of the gateway path to drop for the upstream's (the raw path is forwarded).
    strip: int = len(API_PREFIX)

    @property
    def path(self) -> str:
        # Read by the request metrics middleware as the route's label (low cardinality).
        return self.template


def resolve(path: str) -> RouteMatch | None:
    """The route of a gateway path, or None when the gateway does not proxy it (its own endpoints, unknown)."""
    if not path.startswith("/api/"):
        return None
    # Scripts of the old system add trailing slashes; the services declare their paths without.
    if len(path) > 5 and path.endswith("/"):
        path = path.rstrip("/")
    rest = path[4:]  # keeps the leading slash: "/jobs/12/files"
    segment, _, tail = rest[1:].partition("/")
    service = SEGMENT_OWNERS.get(segment)
    if service is None:
        return None
    if service == "monitoring":
        upstream_path = "/" + tail
        return RouteMatch("monitoring", upstream_path, "/api/monitoring/{path}", False, len("/api/monitoring"))
    if segment == "jobs":
        job_id, _, after = tail.partition("/")
        if job_id and (after == "files" or after.startswith("files/")):
            return RouteMatch("file_manager", rest, "/api/jobs/{id}/files", False)
    return RouteMatch(service, rest, f"/api/{segment}", rest in PUBLIC_PATHS)


def gateway_path(service: str, upstream_path: str) -> str | None:
    """The public path through which `upstream_path` of `service` is reachable, or None when it is not public."""
    public = f"{API_PREFIX}/monitoring{upstream_path}" if service == "monitoring" else API_PREFIX + upstream_path
    match = resolve(public)
    if match is None or match.service != service:
        return None
    return public
