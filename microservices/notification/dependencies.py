"""Request dependencies of the notification service."""

from __future__ import annotations

from typing import Annotated

from cryptography.fernet import MultiFernet
from fastapi import Depends, Request

from microservices.common.auth import CurrentPrincipal, Principal
from microservices.common.errors import Forbidden
from microservices.common.pagination import PageParams
from microservices.notification.config import Settings
from microservices.notification.service import make_fernet


async def require_user(principal: CurrentPrincipal) -> Principal:
    """The caller must be a user (notifications, preferences and webhooks belong to users)."""
    if principal.user_id is None:
        raise Forbidden("Notifications belong to user accounts; service accounts have none.", code="not_a_user")
    return principal


UserPrincipal = Annotated[Principal, Depends(require_user)]


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


SettingsDep = Annotated[Settings, Depends(get_settings)]


def get_fernet(settings: SettingsDep) -> MultiFernet:
    """The key that encrypts webhook secrets at rest."""
    return make_fernet(settings)


FernetDep = Annotated[MultiFernet, Depends(get_fernet)]

__all__ = ["FernetDep", "PageParams", "SettingsDep", "UserPrincipal"]
