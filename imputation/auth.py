"""Admin login through the user service: one identity store; staff rights from the `admin` and `service_admin` roles.

The password is checked by the user service (`POST /auth/login`); Django keeps a local user with an unusable
password, refreshed at every login: `admin` makes a superuser, `service_admin` a staff member of the
"service admins" group, which may manage services and panels; anyone else may not enter the admin.
"""

from __future__ import annotations

import logging
from typing import Any

import httpx
from django.conf import settings
from django.contrib.auth.backends import BaseBackend
from django.contrib.auth.models import Group, Permission, User
from django.http import HttpRequest

logger = logging.getLogger(__name__)

SERVICE_ADMIN_GROUP = "service admins"
SERVICE_ADMIN_MODELS = ("imputationservice", "referencepanel")


def service_admin_group() -> Group:
    """The group whose members manage services and panels (created with its permissions on first use)."""
    group, created = Group.objects.get_or_create(name=SERVICE_ADMIN_GROUP)
    if created or not group.permissions.exists():
        permissions = Permission.objects.filter(
            content_type__app_label="imputation", content_type__model__in=SERVICE_ADMIN_MODELS
        )
        group.permissions.set(permissions)
    return group


class UserServiceBackend(BaseBackend):
    """Authenticates admin logins against the user service."""

    def authenticate(
        self, request: HttpRequest | None, username: str | None = None, password: str | None = None, **kwargs: Any
    ) -> User | None:
        if not username or not password:
            return None
        try:
            response = httpx.post(
                f"{settings.USER_SERVICE_URL.rstrip('/')}/auth/login",
                json={"username": username, "password": password},
                timeout=settings.REGISTRY_TIMEOUT_S,
            )
        except httpx.HTTPError as exc:
            logger.warning("admin login for %s: the user service could not be reached: %s", username, exc)
            return None
        if response.status_code != 200:
            return None
        account = response.json()["user"]
        roles = set(account.get("roles", []))
        if not account.get("is_active", True) or not roles & {"admin", "service_admin"}:
            return None
        user, _ = User.objects.get_or_create(username=account["username"])
        user.email = account.get("email", "")
        user.first_name = account.get("first_name", "")[:150]
        user.last_name = account.get("last_name", "")[:150]
        user.is_active = True
        user.is_staff = True
        user.is_superuser = "admin" in roles
        user.set_unusable_password()
        user.save()
        group = service_admin_group()
        if "service_admin" in roles:
            user.groups.add(group)
        else:
            user.groups.remove(group)
        return user

    def get_user(self, user_id: int) -> User | None:
        return User.objects.filter(pk=user_id, is_active=True).first()
