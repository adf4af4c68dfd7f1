"""Endpoints of the user service, one module per area."""

from fastapi import APIRouter

from microservices.user_service.routers import audit, auth, credentials, groups, internal, tokens, users

routers: list[APIRouter] = [
    internal.router,
    auth.router,
    credentials.router,
    users.router,
    groups.router,
    tokens.router,
    audit.router,
]
