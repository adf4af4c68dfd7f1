"""Talking to the external services themselves: each protocol's cheap health probe, and reading their panels.

aiohttp rather than httpx here: one check cycle probes every service at once, and httpx 0.28's pool spends most
of its time in bookkeeping at that concurrency (see the benchmark in scripts/bench/). The number in flight is
bounded by the caller's semaphore, not by the connector, whose limit is not honoured for reused connections.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from microservices.common.errors import UpstreamError

# App ids of the imputation app, newest first (protocols/michigan.md §6).
MICHIGAN_APP_IDS = ("imputationserver2", "imputationserver", "minimac4")
_HG38 = re.compile(r"hg38|grch38|b38", re.IGNORECASE)


@dataclass(frozen=True)
class ProbeResult:
    """The outcome of one health probe."""

    status: str  # "healthy" or "unhealthy"
    http_status: int | None
    response_time_ms: float | None
    error_message: str | None
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RemotePanel:
    """A reference panel as a Michigan server lists it."""

    panel_id: str
    name: str
    build: str
    populations: list[str]
    parameters: dict[str, Any]


def make_session(*, connect_timeout_s: float, total_timeout_s: float, limit: int = 0) -> aiohttp.ClientSession:
    """The client session for external services (one per process, made in the lifespan)."""
    return aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=total_timeout_s, sock_connect=connect_timeout_s),
        connector=aiohttp.TCPConnector(limit=limit, ttl_dns_cache=300),
        headers={"User-Agent": "federated-imputation/service_registry"},
    )


def probe_url(api_type: str, base_url: str) -> str:
    """The protocol's cheap probe: Michigan `GET /api/v2/server`, WES `GET /service-info`."""
    if api_type == "michigan":
        return f"{base_url}/api/v2/server"
    return f"{base_url}/service-info"


def auth_headers(api_type: str, credential: str | None) -> dict[str, str]:
    """Michigan takes its token in `X-Auth-Token` (no prefix); WES nodes take a bearer token."""
    if not credential:
        return {}
    if api_type == "michigan":
        return {"X-Auth-Token": credential}
    return {"Authorization": f"Bearer {credential}"}


def describe_error(exc: BaseException, url: str, *, timeout_s: float) -> str:
    """A short sentence for the health log; never includes the credential."""
    target = re.sub(r"^https?://", "", url).split("/", 1)[0]
    if isinstance(exc, TimeoutError | asyncio.TimeoutError | aiohttp.ServerTimeoutError):
        return f"no answer from {target} within {timeout_s:g} s"
    if isinstance(exc, aiohttp.ClientConnectorError):
        cause = exc.os_error
        if isinstance(cause, ConnectionRefusedError):
            return f"connection refused by {target}"
        return f"cannot connect to {target}: {cause.strerror or type(cause).__name__}"
    if isinstance(exc, aiohttp.ClientError):
        return f"{type(exc).__name__} talking to {target}: {exc}"[:500]
    return f"{type(exc).__name__}: {exc}"[:500]


async def _get_json(
    session: aiohttp.ClientSession,
    url: str,
    headers: dict[str, str],
    client_timeout: aiohttp.ClientTimeout | None = None,
) -> tuple[int, Any]:
    # aiohttp reads `timeout=None` as "no timeout at all": leave the session's own unless one is given.
    extra: dict[str, Any] = {} if client_timeout is None else {"timeout": client_timeout}
    async with session.get(url, headers=headers, allow_redirects=True, **extra) as response:
        body: Any = None
        text = await response.text()
        try:
            body = json.loads(text) if text else None
        except ValueError:
            body = text[:200]
        return response.status, body


def _judge(api_type: str, status: int, body: Any) -> tuple[str, str | None, dict[str, Any]]:
    if status != 200:
        message = body.get("message") or body.get("msg") if isinstance(body, dict) else None
        return "unhealthy", f"HTTP {status}" + (f": {message}" if message else ""), {}
    if not isinstance(body, dict):
        return "unhealthy", "the answer is not a JSON object", {}
    if api_type == "michigan":
        if body.get("maintenace") or body.get("maintenance"):
            return "unhealthy", "the server is in maintenance mode", {}
        details = {"name": body.get("name"), "logged_in": body.get("loggedIn"), "apps": body.get("apps", [])}
        return "healthy", None, details
    if "workflow_type_versions" not in body:
        return "unhealthy", "the answer is not a WES service-info (no workflow_type_versions)", {}
    return "healthy", None, wes_capabilities(body)


async def probe(
    session: aiohttp.ClientSession,
    *,
    api_type: str,
    base_url: str,
    credential: str | None = None,
    timeout_s: float | None = None,
) -> ProbeResult:
    """Check one service with its protocol's probe; never raises for the service's own failures."""
    url = probe_url(api_type, base_url)
    timeout = session.timeout.total if timeout_s is None else timeout_s
    client_timeout = None if timeout_s is None else aiohttp.ClientTimeout(total=timeout_s)
    started = time.perf_counter()
    try:
        status, body = await _get_json(session, url, auth_headers(api_type, credential), client_timeout)
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        return ProbeResult("unhealthy", None, None, describe_error(exc, url, timeout_s=timeout or 0))
    elapsed = round((time.perf_counter() - started) * 1000, 2)
    health, error, details = _judge(api_type, status, body)
    return ProbeResult(health, status, elapsed, error, details)


def wes_capabilities(service_info: dict[str, Any]) -> dict[str, Any]:
    """What a WES node can run, from its service-info: workflow types, engines and versions."""
    types = {
        name: list((spec or {}).get("workflow_type_version", []))
        for name, spec in (service_info.get("workflow_type_versions") or {}).items()
    }
    engines_raw = service_info.get("workflow_engine_versions") or {}
    engines = {
        name: list(spec.get("workflow_engine_version", [])) if isinstance(spec, dict) else [str(spec)]
        for name, spec in engines_raw.items()
    }
    return {
        "workflow_type_versions": types,
        "workflow_engine_versions": engines,
        "supported_wes_versions": list(service_info.get("supported_wes_versions") or []),
        "version": service_info.get("version"),
    }


async def read_wes_capabilities(
    session: aiohttp.ClientSession, *, base_url: str, credential: str | None
) -> dict[str, Any]:
    """A WES node's service-info, reduced to its capabilities; UpstreamError when it cannot be read."""
    url = f"{base_url}/service-info"
    try:
        status, body = await _get_json(session, url, auth_headers("ga4gh_wes", credential))
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        raise UpstreamError(f"The service could not be read: {describe_error(exc, url, timeout_s=0)}.") from exc
    if status != 200 or not isinstance(body, dict) or "workflow_type_versions" not in body:
        raise UpstreamError(f"The service's service-info answered HTTP {status} without WES capabilities.")
    return wes_capabilities(body)


def panel_build(name: str, key: str) -> str:
    """A Michigan panel's build: hg38 when its name or id says so, else hg19 (the servers' default)."""
    return "hg38" if _HG38.search(name) or _HG38.search(key) else "hg19"


async def read_michigan_panels(
    session: aiohttp.ClientSession, *, base_url: str, credential: str | None
) -> tuple[str, list[RemotePanel]]:
    """The imputation app's id and its `refpanel` values with their `population` lists (protocols/michigan.md)."""
    headers = auth_headers("michigan", credential)
    try:
        status, server = await _get_json(session, f"{base_url}/api/v2/server", headers)
        if status != 200 or not isinstance(server, dict):
            raise UpstreamError(f"The server's /api/v2/server answered HTTP {status}.")
        apps = [str(app.get("id", "")) for app in server.get("apps", []) if isinstance(app, dict)]
        app_id = next((a for wanted in MICHIGAN_APP_IDS for a in apps if a.split("@", 1)[0] == wanted), None)
        if app_id is None:
            hint = " (is the service's API token set and valid?)" if not server.get("loggedIn") else ""
            raise UpstreamError(f"The server lists no imputation app{hint}.", code="no_imputation_app")
        status, app = await _get_json(session, f"{base_url}/api/v2/server/apps/{app_id}", headers)
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        raise UpstreamError(f"The service could not be read: {describe_error(exc, base_url, timeout_s=0)}.") from exc
    if status != 200 or not isinstance(app, dict):
        raise UpstreamError(f"The server's app {app_id} answered HTTP {status}.")
    params = {p.get("id"): p for p in app.get("params", []) if isinstance(p, dict)}
    populations_by_key = {
        v.get("key"): [str(p.get("key")) for p in v.get("values", [])]
        for v in (params.get("population") or {}).get("values", [])
    }
    panels = []
    for value in (params.get("refpanel") or {}).get("values", []):
        key, name = str(value.get("key", "")), str(value.get("value", ""))
        bare = key.removeprefix("apps@")
        panel_id, _, version = bare.partition("@")
        panels.append(
            RemotePanel(
                panel_id=panel_id,
                name=name or panel_id,
                build=panel_build(name, panel_id),
                populations=populations_by_key.get(key, []),
                parameters={"refpanel": key, "version": version or None, "app_id": app_id},
            )
        )
    return app_id, panels
