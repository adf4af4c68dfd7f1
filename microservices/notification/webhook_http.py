"""The HTTP transport of webhook calls: it connects only to public addresses, checked when it connects.

A webhook URL is checked when it is registered, but a host name can resolve to a private address then or later
(an internal service name, a record changed after the check). So the transport resolves the host itself, refuses
the call if any of its addresses is loopback, private, link-local or otherwise not global, and connects to the
address it checked, so that a second lookup cannot answer differently. TLS still verifies the certificate
against the host name.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable
from typing import Any

import httpcore
import httpx


class NotPublicAddress(httpcore.ConnectError):
    """The webhook's host resolves to an address inside a private network."""


class PublicOnlyBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend, refusing any host that resolves to a non-global address."""

    def __init__(self) -> None:
        self._backend = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            infos = await asyncio.wait_for(
                asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM), timeout
            )
        except (OSError, TimeoutError) as exc:
            raise httpcore.ConnectError(f"{host} cannot be resolved: {exc}") from exc
        addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
        for address in addresses:
            if not ipaddress.ip_address(address.split("%", 1)[0]).is_global:
                raise NotPublicAddress(f"{host} resolves to the private address {address}")
        return await self._backend.connect_tcp(
            addresses[0], port, timeout=timeout, local_address=local_address, socket_options=socket_options
        )

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise NotPublicAddress("webhooks cannot call a Unix socket")

    async def sleep(self, seconds: float) -> None:
        await self._backend.sleep(seconds)


def public_only_transport() -> httpx.AsyncHTTPTransport:
    """An httpx transport whose connections reach public addresses only (no proxies from the environment)."""
    transport = httpx.AsyncHTTPTransport(trust_env=False)
    # httpx builds its httpcore pool without a way to pass a network backend; the pool is rebuilt with ours.
    pool = transport._pool
    transport._pool = httpcore.AsyncConnectionPool(
        ssl_context=pool._ssl_context,
        max_connections=pool._max_connections,
        max_keepalive_connections=pool._max_keepalive_connections,
        keepalive_expiry=pool._keepalive_expiry,
        http1=pool._http1,
        http2=pool._http2,
        network_backend=PublicOnlyBackend(),
    )
    return transport
