"""Dependencies of the gateway's own endpoints."""

from typing import Annotated

from fastapi import Depends, Request, Response

from microservices.common.auth import CurrentPrincipal, Principal
from microservices.common.errors import RateLimited
from microservices.gateway.proxy import Gateway


def get_gateway(request: Request) -> Gateway:
    """The proxy state made in the lifespan."""
    gateway: Gateway = request.app.state.gateway
    return gateway


GatewayDep = Annotated[Gateway, Depends(get_gateway)]


async def rate_limited_principal(
    request: Request, response: Response, principal: CurrentPrincipal, gateway: GatewayDep
) -> Principal:
    """The verified caller, counted against its rate limit as proxied calls are."""
    if gateway.limiter is None:
        return principal
    client = request.client.host if request.client else "-"
    decision = gateway.limiter.check(principal=principal, client_address=client)
    if decision is None:
        return principal
    if not decision.allowed:
        raise RateLimited(
            f"Too many requests: the limit is {decision.limit} per {gateway.settings.rate_limit_window_s} s.",
            retry_after_s=decision.reset_s,
            headers={k.decode(): v.decode() for k, v in decision.headers() if k != b"retry-after"},
        )
    for name, value in decision.headers():
        response.headers[name.decode()] = value.decode()
    return principal


LimitedPrincipal = Annotated[Principal, Depends(rate_limited_principal)]
