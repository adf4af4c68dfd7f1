"""Service credentials encrypted at rest with Fernet (`FERNET_KEY`; comma-separated keys rotate)."""

from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from microservices.common.errors import ServiceUnavailable
from microservices.service_registry.config import Settings


def make_fernet(settings: Settings) -> MultiFernet | None:
    """The configured keys (the first encrypts, all decrypt), or None when none is set."""
    if settings.fernet_key is None or not settings.fernet_key.get_secret_value().strip():
        if settings.environment == "production":
            raise ValueError("Set FERNET_KEY: production needs a key for credentials at rest.")
        return None
    keys = [k.strip() for k in settings.fernet_key.get_secret_value().split(",") if k.strip()]
    return MultiFernet([Fernet(k) for k in keys])


def encrypt(fernet: MultiFernet | None, plaintext: str) -> str:
    """The Fernet token of `plaintext`; 503 when the registry has no key to protect it with."""
    if fernet is None:
        raise ServiceUnavailable(
            "Credentials cannot be stored: the service registry has no FERNET_KEY.", code="no_encryption_key"
        )
    return fernet.encrypt(plaintext.encode()).decode()


def decrypt(fernet: MultiFernet | None, token: str | None) -> str | None:
    """The plaintext of a stored credential, or None when there is none or no key opens it."""
    if token is None or fernet is None:
        return None
    try:
        return fernet.decrypt(token.encode()).decode()
    except InvalidToken:
        return None
