"""The proxy path: plain ASGI in front of the gateway's own FastAPI routes, streaming both ways through aiohttp.

Every `/api/...` request the routing table knows goes through `Gateway.handle`: token check, rate limit, circuit
breaker, then the upstream call with the body streamed in and the answer streamed out, never held whole.

aiohttp is the upstream client because it was measured to be the fastest here: httpx 0.28's connection pool
spends most of a proxied request in its bookkeeping under concurrency (encode/httpx#3215, encode/httpcore#1035).
"""

from __future__ import annotations

import logging
import time
from typing import Any

import aiohttp
import orjson
from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from yarl import URL

from microservices.common.app import cors_options
from microservices.common.auth import Principal, TokenVerifier
from microservices.common.errors import (
    AppError,
    RateLimited,
    ServiceUnavailable,
    Unauthorized,
    UpstreamError,
    UpstreamTimeout,
    error_body,
)
from microservices.common.middleware import RequestContextMiddleware
from microservices.gateway.breaker import CircuitBreaker
from microservices.gateway.config import Settings
from microservices.gateway.ratelimit import Decision, RateLimiter
from microservices.gateway.routing import SERVICE_LABELS, RouteMatch, resolve
from microservices.gateway.websocket import proxy_websocket

logger = logging.getLogger(__name__)

# Headers that describe one connection, not the message: never forwarded (RFC 9110, 7.6.1).
HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)
# The gateway answers `Expect: 100-continue` itself, and states the caller's address (as its own server resolved
# it from trusted proxies only) instead of passing on whatever the caller claimed.
_DROPPED_REQUEST_HEADERS = HOP_BY_HOP | {
    b"host",
    b"content-length",
    b"expect",
    b"x-forwarded-for",
    b"x-forwarded-proto",
    b"x-forwarded-host",
}
# The gateway's server adds its own date and request id (the same the upstream saw); the upstream's server name
# is nobody's business.
_DROPPED_RESPONSE_HEADERS = HOP_BY_HOP | {b"date", b"server", b"x-request-id"}
# A response this small (or smaller) is read whole and sent in one message; anything else is streamed.
_SMALL_BODY = 64 * 1024
_CHUNK = 64 * 1024
_MAX_VERIFIED = 10_000


class _ClientGone(Exception):
    """The caller disconnected while its request body was being forwarded."""


class Gateway:
    """What the proxy path needs: the upstream addresses, the aiohttp session, breakers, verifier and limiter."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.upstreams: dict[str, str] = {
            name: url.rstrip("/") for name, url in settings.peer_urls().items() if name in SERVICE_LABELS
        }
        self.breakers = {
            name: CircuitBreaker(
                name, failure_threshold=settings.breaker_failure_threshold, cooldown_s=settings.breaker_cooldown_s
            )
            for name in self.upstreams
        }
        self.session: aiohttp.ClientSession | None = None
        self.verifier: TokenVerifier | None = None
        self.limiter: RateLimiter | None = None
        # Access tokens already verified, by the exact token string, until they expire: verifying an RS256
        # signature is the dearest step of a proxied request, and a client sends the same token many times.
        self._verified: dict[str, tuple[float, Principal]] = {}

    async def start(self, *, verifier: TokenVerifier, limiter: RateLimiter | None) -> None:
        """Open the upstream connection pool (in the lifespan, on the running loop)."""
        self.verifier = verifier
        self.limiter = limiter
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=self.settings.upstream_max_connections, keepalive_timeout=30),
            timeout=aiohttp.ClientTimeout(
                total=None,
                connect=self.settings.upstream_connect_timeout_s,
                sock_read=self.settings.upstream_read_timeout_s,
            ),
            # Bodies pass through as they are: no decompression, no headers the caller did not send, and no
            # cookie jar, which would hand one caller's cookies to the next.
            auto_decompress=False,
            skip_auto_headers=("Accept", "Accept-Encoding", "User-Agent", "Content-Type"),
            cookie_jar=aiohttp.DummyCookieJar(),
        )

    async def close(self) -> None:
        """Close the upstream connection pool."""
        if self.session is not None:
            await self.session.close()
            self.session = None

    async def authenticate(self, scope: Scope, match: RouteMatch) -> tuple[Principal | None, bool]:
        """The verified caller (None for an anonymous call to a public route), and whether its token's revocation
        is still to be checked; raises Unauthorized for a call that needs a token and has no valid one."""
        authorization = b""
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorization = value
                break
        scheme, _, token = authorization.partition(b" ")
        token = token.strip()
        if scheme.lower() != b"bearer" or not token:
            if match.public:
                return None, False
            raise Unauthorized("Send a bearer token in the Authorization header.")
        try:
            return await self._verify(token.decode("latin-1"))
        except Unauthorized:
            # A stale token must not stop anyone from logging in again; the user service decides there.
            if match.public:
                return None, False
            raise

    async def _verify(self, token: str) -> tuple[Principal, bool]:
        """The token's principal. A JWT's signature is checked once and the result kept until it expires; for a
        kept one, the revocation is left to the rate limiter's view of it (True in the answer)."""
        assert self.verifier is not None
        now = time.time()
        cached = self._verified.get(token)
        if cached is not None and cached[0] > now:
            return cached[1], True
        principal = await self.verifier.verify(token)
        expires_at = float(principal.claims.get("exp", 0)) if token.count(".") == 2 else 0.0
        if expires_at > now:
            if len(self._verified) >= _MAX_VERIFIED:
                self._verified.clear()
            self._verified[token] = (expires_at, principal)
        return principal, False

    async def _revoked(self, principal: Principal, decision: Decision | None) -> bool:
        """Whether the user service revoked the caller's tokens after this one was issued.

        With rate limiting on, as the limiter learnt it at its last report (at most `report_interval_s` ago):
        every service behind the gateway checks revocation itself on each request, so a revoked token is
        refused at once all the same, by the service instead of the gateway."""
        if decision is not None:
            return decision.revokes(principal)
        assert self.verifier is not None
        check = self.verifier.revocation_check
        return check is not None and await check(principal)

    async def handle(self, scope: Scope, receive: Receive, send: Send, match: RouteMatch) -> None:
        """Serve one proxied request, answering the platform's JSON errors for everything refused or failed."""
        decision: Decision | None = None
        try:
            principal, revocation_pending = await self.authenticate(scope, match)
            if self.limiter is not None:
                client = scope.get("client")
                decision = self.limiter.check(principal=principal, client_address=client[0] if client else "-")
            if principal is not None and revocation_pending and await self._revoked(principal, decision):
                raise Unauthorized("The token has been revoked.", code="token_revoked")
            if decision is not None and not decision.allowed:
                raise RateLimited(
                    f"Too many requests: the limit is {decision.limit} per {self.settings.rate_limit_window_s} s.",
                    retry_after_s=decision.reset_s,
                )
            breaker = self.breakers[match.service]
            if not breaker.allow():
                raise ServiceUnavailable(
                    f"The {SERVICE_LABELS[match.service]} is unavailable; calls to it are paused for a moment.",
                    headers={"Retry-After": str(breaker.retry_after_s())},
                    extra={"service": match.service},
                )
            await self._forward(scope, receive, send, match, breaker, decision)
        except AppError as exc:
            await send_error(send, exc, decision)

    async def _forward(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        match: RouteMatch,
        breaker: CircuitBreaker,
        decision: Decision | None,
    ) -> None:
        assert self.session is not None
        label = SERVICE_LABELS[match.service]
        raw_path: bytes = scope.get("raw_path") or scope["path"].encode()
        target = raw_path[match.strip :]
        if len(target) > 1:
            target = target.rstrip(b"/") or b"/"
        query: bytes = scope.get("query_string", b"")
        url = self.upstreams[match.service] + target.decode("latin-1")
        if query:
            url += "?" + query.decode("latin-1")

        headers: list[tuple[str, str]] = []
        has_body = False
        host = ""
        for name, value in scope["headers"]:
            if name == b"host":
                host = value.decode("latin-1")
            if name == b"content-length":
                has_body = value != b"0"
                headers.append(("Content-Length", value.decode("latin-1")))
            elif name == b"transfer-encoding":
                has_body = True
            if name not in _DROPPED_REQUEST_HEADERS:
                headers.append((name.decode("latin-1"), value.decode("latin-1")))
        client = scope.get("client")
        if client:
            headers.append(("X-Forwarded-For", client[0]))
        headers.append(("X-Forwarded-Proto", scope.get("scheme", "http")))
        if host:
            headers.append(("X-Forwarded-Host", host))

        client_gone = False

        async def request_body() -> Any:
            nonlocal client_gone
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    client_gone = True
                    raise _ClientGone
                chunk = message.get("body", b"")
                if chunk:
                    yield chunk
                if not message.get("more_body", False):
                    return

        try:
            response = await self.session.request(
                scope["method"],
                URL(url, encoded=True),
                headers=headers,
                data=request_body() if has_body else None,
                allow_redirects=False,
            )
        except TimeoutError as exc:
            breaker.record_failure()
            raise UpstreamTimeout(
                f"The {label} did not answer within {self.settings.upstream_read_timeout_s:g} s.",
                extra={"service": match.service},
            ) from exc
        except aiohttp.ClientConnectorError as exc:
            breaker.record_failure()
            logger.warning("%s unreachable: %s", match.service, exc)
            raise ServiceUnavailable(f"The {label} is unavailable.", extra={"service": match.service}) from exc
        except aiohttp.ClientError as exc:
            if client_gone:
                logger.info("caller went away while its request body was being forwarded to %s", match.service)
                return
            breaker.record_failure()
            logger.warning("%s failed: %s", match.service, exc)
            raise UpstreamError(
                f"The {label} closed the connection without a complete answer.", extra={"service": match.service}
            ) from exc
        breaker.record_success()
        async with response:
            await self._relay(response, send, match, decision)

    async def _relay(
        self, response: aiohttp.ClientResponse, send: Send, match: RouteMatch, decision: Decision | None
    ) -> None:
        headers = [(name.lower(), value) for name, value in response.raw_headers]
        headers = [(name, value) for name, value in headers if name not in _DROPPED_RESPONSE_HEADERS]
        if response.status in (301, 302, 303, 307, 308):
            headers = [(n, self._public_location(v, match) if n == b"location" else v) for n, v in headers]
        if decision is not None:
            headers.extend(decision.headers())
        length = response.content_length
        if length is not None and length <= _SMALL_BODY:
            # Nothing is sent yet, so a body that stalls or breaks off can still be answered with a JSON error.
            label = SERVICE_LABELS[match.service]
            try:
                body = await response.read()
            except TimeoutError as exc:
                raise UpstreamTimeout(
                    f"The {label} did not finish its answer within {self.settings.upstream_read_timeout_s:g} s.",
                    extra={"service": match.service},
                ) from exc
            except aiohttp.ClientError as exc:
                raise UpstreamError(f"The {label} broke off its answer.", extra={"service": match.service}) from exc
            await send({"type": "http.response.start", "status": response.status, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        await send({"type": "http.response.start", "status": response.status, "headers": headers})
        async for chunk in response.content.iter_chunked(_CHUNK):
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    def _public_location(self, location: bytes, match: RouteMatch) -> bytes:
        """An upstream redirect to itself, rewritten to the same place through the gateway."""
        base = self.upstreams[match.service].encode()
        if not location.startswith(base):
            return location
        prefix = b"/api/monitoring" if match.service == "monitoring" else b"/api"
        return prefix + location[len(base) :]


async def send_error(send: Send, exc: AppError, decision: Decision | None = None) -> None:
    """Answer with the platform's JSON error body (and the rate-limit headers, when counted)."""
    body = orjson.dumps(error_body(exc.code, exc.message, **exc.extra))
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *((name.lower().encode(), value.encode()) for name, value in exc.headers.items()),
    ]
    if decision is not None:
        # A refusal's Retry-After is already among the error's own headers.
        headers.extend(h for h in decision.headers() if h[0] != b"retry-after")
    await send({"type": "http.response.start", "status": exc.status_code, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class GatewayApp(FastAPI):
    """The gateway's FastAPI app, with a short path for the requests it proxies.

    A proxied request needs request ids, the access log and metrics, CORS, security headers and the proxy, not
    FastAPI's own middleware (error pages, telemetry, body limits) and router: skipping those took a fifth of the
    gateway's CPU time per proxied request (scripts/bench/gateway.py). Everything else is FastAPI's as usual.
    """

    proxy_stack: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.proxy_stack is not None:
            match = resolve(scope["path"])
            if match is not None:
                scope["app"] = self
                scope["route"] = match
                await self.proxy_stack(scope, receive, send)
                return
        await super().__call__(scope, receive, send)


def proxy_stack(gateway: Gateway, settings: Settings) -> ASGIApp:
    """The short path of proxied requests: request context, CORS when configured, security headers, the proxy."""

    async def proxy(scope: Scope, receive: Receive, send: Send) -> None:
        await gateway.handle(scope, receive, send, scope["route"])

    app: ASGIApp = SecurityHeadersMiddleware(proxy)
    if settings.cors_origins:
        app = CORSMiddleware(app, **cors_options(settings))
    return RequestContextMiddleware(app, service=settings.service_name, access_log=settings.access_log)


class ProxyMiddleware:
    """Inside FastAPI's stack: sends `/ws/...` upstream, and lets the gateway's own endpoints take a trailing slash."""

    def __init__(self, app: ASGIApp, *, gateway: Gateway) -> None:
        self.app = app
        self.gateway = gateway

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path = scope["path"]
            if path.startswith("/api/") and len(path) > 5 and path.endswith("/"):
                # Answered in place, not redirected.
                scope = {**scope, "path": path.rstrip("/"), "raw_path": scope.get("raw_path", b"").rstrip(b"/")}
        elif scope["type"] == "websocket" and scope["path"].startswith("/ws/"):
            assert self.gateway.session is not None
            await proxy_websocket(
                scope,
                receive,
                send,
                session=self.gateway.session,
                base_url=self.gateway.upstreams["notification"],
                breaker=self.gateway.breakers["notification"],
            )
            return
        await self.app(scope, receive, send)


class SecurityHeadersMiddleware:
    """Adds the headers that keep browsers from sniffing, framing or leaking the API's answers."""

    HEADERS = (
        (b"x-content-type-options", b"nosniff"),
        (b"x-frame-options", b"DENY"),
        (b"referrer-policy", b"no-referrer"),
    )
    HSTS = (b"strict-transport-security", b"max-age=31536000; includeSubDomains")

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = [*self.HEADERS, self.HSTS] if scope.get("scheme") == "https" else list(self.HEADERS)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        await self.app(scope, receive, send_with_headers)
