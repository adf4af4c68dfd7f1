"""HTTP clients for calls between services: explicit timeouts, bounded pools, request id propagation.

httpx 0.28's connection pool spends much of its time in bookkeeping under concurrency (encode/httpx#3215,
encode/httpcore#1035): it is fine for service-to-service calls, while the gateway's hot proxy path uses aiohttp.
"""

from __future__ import annotations

import httpx

from microservices.common.logging import request_id_var
from microservices.common.settings import ServiceSettings


async def _propagate_request_id(request: httpx.Request) -> None:
    request_id = request_id_var.get()
    if request_id != "-" and "x-request-id" not in request.headers:
        request.headers["X-Request-ID"] = request_id


def make_timeout(
    settings: ServiceSettings, *, read_s: float | None = None, connect_s: float | None = None
) -> httpx.Timeout:
    """The platform's timeouts, with read and connect overridable per call site."""
    return httpx.Timeout(
        connect=connect_s if connect_s is not None else settings.http_connect_timeout_s,
        read=read_s if read_s is not None else settings.http_read_timeout_s,
        write=read_s if read_s is not None else settings.http_read_timeout_s,
        pool=settings.http_pool_timeout_s,
    )


def make_http_client(
    settings: ServiceSettings,
    *,
    base_url: str = "",
    read_timeout_s: float | None = None,
    connect_timeout_s: float | None = None,
    headers: dict[str, str] | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> httpx.AsyncClient:
    """An `httpx.AsyncClient` with explicit timeouts and pool limits that forwards the request id."""
    return httpx.AsyncClient(
        base_url=base_url,
        timeout=make_timeout(settings, read_s=read_timeout_s, connect_s=connect_timeout_s),
        limits=httpx.Limits(
            max_connections=settings.http_max_connections,
            max_keepalive_connections=min(20, settings.http_max_connections),
            keepalive_expiry=30.0,
        ),
        headers={
            "User-Agent": f"federated-imputation/{settings.service_name}/{settings.version}",
            **(headers or {}),
        },
        event_hooks={"request": [_propagate_request_id]},
        transport=transport,
        follow_redirects=False,
    )
