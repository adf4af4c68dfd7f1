"""Secrets at rest: the Michigan result passwords, Fernet-encrypted with `FERNET_KEY`."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from microservices.job_processor.config import Settings

KEY_FILE = "job-processor-fernet.key"


class KeyConfigurationError(RuntimeError):
    pass


def _read_or_create(path: Path) -> bytes:
    # Development and tests only: one key shared by the API and the worker through the var directory.
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_bytes().strip()
    key = Fernet.generate_key()
    with os.fdopen(fd, "wb") as handle:
        handle.write(key)
    return key


def make_fernet(settings: Settings) -> MultiFernet:
    """Fernet with FERNET_KEY (comma-separated keys rotate: the first encrypts, all decrypt)."""
    if settings.fernet_key is not None and settings.fernet_key.get_secret_value().strip():
        keys = [k.strip() for k in settings.fernet_key.get_secret_value().split(",") if k.strip()]
    elif settings.environment == "production":
        raise KeyConfigurationError("Set FERNET_KEY: production needs a key for secrets at rest.")
    else:
        keys = [_read_or_create(settings.var_dir / KEY_FILE).decode()]
    try:
        return MultiFernet([Fernet(k) for k in keys])
    except ValueError as exc:
        raise KeyConfigurationError("FERNET_KEY is not a valid Fernet key.") from exc


def new_result_password() -> str:
    """A random password for a job's encrypted results (letters and digits, easy to paste)."""
    return secrets.token_urlsafe(18).replace("-", "x").replace("_", "y")


def encrypt(fernet: MultiFernet, plaintext: str) -> str:
    return fernet.encrypt(plaintext.encode()).decode()


def decrypt(fernet: MultiFernet, ciphertext: str) -> str | None:
    """The plaintext, or None when no configured key opens it."""
    try:
        return fernet.decrypt(ciphertext.encode()).decode()
    except InvalidToken:
        return None
