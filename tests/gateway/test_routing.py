"""The routing table of DESIGN.md, "The public API": owner, upstream path, public routes, trailing slashes."""

import pytest

from microservices.gateway.routing import gateway_path, resolve


@pytest.mark.parametrize(
    ("path", "service", "upstream_path"),
    [
        ("/api/auth/login", "user_service", "/auth/login"),
        ("/api/auth/user/", "user_service", "/auth/user"),
        ("/api/users/me/service-credentials", "user_service", "/users/me/service-credentials"),
        ("/api/groups/3", "user_service", "/groups/3"),
        ("/api/tokens", "user_service", "/tokens"),
        ("/api/audit", "user_service", "/audit"),
        ("/api/.well-known/jwks.json", "user_service", "/.well-known/jwks.json"),
        ("/api/services/", "service_registry", "/services"),
        ("/api/services/h3africa/health", "service_registry", "/services/h3africa/health"),
        ("/api/reference-panels", "service_registry", "/reference-panels"),
        ("/api/jobs/12/files", "file_manager", "/jobs/12/files"),
        ("/api/jobs/12/files/", "file_manager", "/jobs/12/files"),
        ("/api/jobs/12/files/7/download", "file_manager", "/jobs/12/files/7/download"),
        ("/api/jobs/12/filesystem", "job_processor", "/jobs/12/filesystem"),
        ("/api/jobs/files", "job_processor", "/jobs/files"),
        ("/api/jobs", "job_processor", "/jobs"),
        ("/api/jobs/12/cancel", "job_processor", "/jobs/12/cancel"),
        ("/api/jobs/multi-service", "job_processor", "/jobs/multi-service"),
        ("/api/templates/1", "job_processor", "/templates/1"),
        ("/api/files/abc", "file_manager", "/files/abc"),
        ("/api/notifications/unread", "notification", "/notifications/unread"),
        ("/api/monitoring/health/overall", "monitoring", "/health/overall"),
        ("/api/monitoring/alerts/", "monitoring", "/alerts"),
        ("/api/monitoring", "monitoring", "/"),
    ],
)
def test_each_public_prefix_goes_to_its_owner(path, service, upstream_path):
    match = resolve(path)
    assert match is not None
    assert (match.service, match.upstream_path) == (service, upstream_path)


@pytest.mark.parametrize(
    "path", ["/api/dashboard", "/api/dashboard/stats", "/api/docs", "/api/openapi.json", "/api/", "/health", "/"]
)
def test_the_gateways_own_paths_are_not_proxied(path):
    assert resolve(path) is None


def test_segments_match_whole_not_as_prefixes():
    assert resolve("/api/jobsx") is None
    assert resolve("/api/servicesfoo/1") is None


@pytest.mark.parametrize(
    ("path", "public"),
    [
        ("/api/auth/login", True),
        ("/api/auth/login/", True),
        ("/api/auth/register", True),
        ("/api/auth/refresh", True),
        ("/api/.well-known/jwks.json", True),
        ("/api/auth/user", False),
        ("/api/users", False),
        ("/api/jobs", False),
        ("/api/monitoring/health/overall", False),
    ],
)
def test_only_the_ways_to_a_token_are_public(path, public):
    match = resolve(path)
    assert match is not None and match.public is public


def test_metrics_label_is_the_route_template_not_the_raw_path():
    assert resolve("/api/jobs/12/files").path == "/api/jobs/{id}/files"
    assert resolve("/api/jobs/12").path == "/api/jobs"
    assert resolve("/api/monitoring/alerts/3").path == "/api/monitoring/{path}"


@pytest.mark.parametrize(
    ("service", "path", "public"),
    [
        ("job_processor", "/jobs/{job_id}", "/api/jobs/{job_id}"),
        ("file_manager", "/jobs/{job_id}/files", "/api/jobs/{job_id}/files"),
        ("job_processor", "/jobs/{job_id}/files", None),
        ("monitoring", "/health/overall", "/api/monitoring/health/overall"),
        ("service_registry", "/internal/sync", None),
        ("user_service", "/health", None),
    ],
)
def test_gateway_path_names_only_what_routes_back_to_the_same_service(service, path, public):
    assert gateway_path(service, path) == public
