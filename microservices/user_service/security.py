"""Cryptography of the user service: password hashing, the RS256 signing key and its JWKS, opaque tokens, Fernet."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import secrets
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jose import jwk, jwt
from passlib.context import CryptContext

from microservices.common.auth import API_TOKEN_PREFIX
from microservices.user_service.config import Settings

logger = logging.getLogger(__name__)

ALGORITHM = "RS256"
JWT_KEY_FILE = "jwt-private.pem"
FERNET_KEY_FILE = "user-service-fernet.key"


class KeyConfigurationError(RuntimeError):
    """The service cannot start: a signing or encryption key is missing or unreadable."""


def password_context(settings: Settings) -> CryptContext:
    """Argon2id hashing (passlib's bcrypt handler breaks with bcrypt >= 4.1, argon2 has no such trouble)."""
    return CryptContext(
        schemes=["argon2"],
        argon2__memory_cost=settings.password_hash_memory_kib,
        argon2__time_cost=settings.password_hash_time_cost,
        argon2__parallelism=settings.password_hash_parallelism,
    )


def hash_secret(value: str) -> str:
    """SHA-256 of an opaque high-entropy token: enough to store it, and lookups stay indexed."""
    return hashlib.sha256(value.encode()).hexdigest()


def new_refresh_token() -> str:
    """An opaque refresh token."""
    return secrets.token_urlsafe(32)


def new_api_token() -> str:
    """An opaque personal API token, recognisable by its prefix."""
    return API_TOKEN_PREFIX + secrets.token_urlsafe(32)


def _b64url_uint(value: int) -> str:
    raw = value.to_bytes((value.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def public_jwk(public_key: rsa.RSAPublicKey) -> dict[str, str]:
    """The JWK of an RSA public key, its `kid` the RFC 7638 thumbprint."""
    numbers = public_key.public_numbers()
    members = {"e": _b64url_uint(numbers.e), "kty": "RSA", "n": _b64url_uint(numbers.n)}
    canonical = json.dumps(members, separators=(",", ":"), sort_keys=True).encode()
    kid = base64.urlsafe_b64encode(hashlib.sha256(canonical).digest()).rstrip(b"=").decode()
    return {**members, "kid": kid, "use": "sig", "alg": ALGORITHM}


def _generate_pem() -> bytes:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _read_or_create(path: Path, make: Any) -> bytes:
    """The file's content; created (mode 0600) with `make()` when absent, without racing another process."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_bytes()
    content: bytes = make()
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(content)
    logger.warning("generated a development key in %s", path)
    return content


def _load_private_pem(settings: Settings) -> bytes:
    if settings.jwt_private_key is not None:
        pem = settings.jwt_private_key.get_secret_value()
        # Env files hold one line: a PEM may come with its line breaks written as \n.
        return (pem if "\n" in pem else pem.replace("\\n", "\n")).encode()
    if settings.jwt_private_key_file is not None:
        try:
            return settings.jwt_private_key_file.read_bytes()
        except OSError as exc:
            raise KeyConfigurationError(f"USER_SERVICE_JWT_PRIVATE_KEY_FILE cannot be read: {exc}") from exc
    if settings.environment == "production":
        raise KeyConfigurationError(
            "Set USER_SERVICE_JWT_PRIVATE_KEY or USER_SERVICE_JWT_PRIVATE_KEY_FILE: production needs a signing key."
        )
    return _read_or_create(settings.var_dir / JWT_KEY_FILE, _generate_pem)


@dataclass(frozen=True)
class IssuedToken:
    token: str
    jti: str
    issued_at: int
    expires_in: int


class TokenSigner:
    """Holds the one private signing key and the public keys it publishes."""

    def __init__(self, private_pem: bytes, *, previous_public_pem: bytes | None = None) -> None:
        try:
            key = serialization.load_pem_private_key(private_pem, password=None)
        except (ValueError, TypeError) as exc:
            raise KeyConfigurationError(f"The JWT signing key is not a readable PEM private key: {exc}") from exc
        if not isinstance(key, rsa.RSAPrivateKey):
            raise KeyConfigurationError("The JWT signing key must be an RSA key.")
        # Parsed once: python-jose would otherwise load and check the PEM on every signature (about 0.2 s).
        self._signing_key = jwk.construct(private_pem.decode(), ALGORITHM)
        self.jwk = public_jwk(key.public_key())
        self.kid = self.jwk["kid"]
        self.keys = [self.jwk]
        if previous_public_pem:
            previous = serialization.load_pem_public_key(previous_public_pem)
            if not isinstance(previous, rsa.RSAPublicKey):
                raise KeyConfigurationError("The previous JWT public key must be an RSA key.")
            if (previous_jwk := public_jwk(previous))["kid"] != self.kid:
                self.keys.append(previous_jwk)

    @classmethod
    def from_settings(cls, settings: Settings) -> TokenSigner:
        """The signer for the configured key (generated once into VAR_DIR in development and test)."""
        previous = settings.jwt_previous_public_key
        return cls(_load_private_pem(settings), previous_public_pem=previous.encode() if previous else None)

    @property
    def jwks(self) -> dict[str, Any]:
        """The JSON Web Key Set other services verify tokens with."""
        return {"keys": list(self.keys)}

    def sign(self, claims: dict[str, Any], *, ttl_s: int, issued_at: int | None = None) -> IssuedToken:
        """A signed JWT with `claims` plus iat, exp and jti."""
        now = issued_at if issued_at is not None else int(time.time())
        jti = uuid.uuid4().hex
        payload = {**claims, "iat": now, "exp": now + ttl_s, "jti": jti}
        token = jwt.encode(payload, self._signing_key, algorithm=ALGORITHM, headers={"kid": self.kid})
        return IssuedToken(token=str(token), jti=jti, issued_at=now, expires_in=ttl_s)


def make_fernet(settings: Settings) -> MultiFernet:
    """Fernet with FERNET_KEY (comma-separated keys rotate: the first encrypts, all decrypt)."""
    if settings.fernet_key is not None and settings.fernet_key.get_secret_value().strip():
        raw_keys = [k.strip() for k in settings.fernet_key.get_secret_value().split(",") if k.strip()]
    elif settings.environment == "production":
        raise KeyConfigurationError("Set FERNET_KEY: production needs a key for secrets at rest.")
    else:
        raw_keys = [_read_or_create(settings.var_dir / FERNET_KEY_FILE, Fernet.generate_key).decode().strip()]
    try:
        return MultiFernet([Fernet(k) for k in raw_keys])
    except ValueError as exc:
        raise KeyConfigurationError("FERNET_KEY is not a valid Fernet key.") from exc


def decrypt(fernet: MultiFernet, ciphertext: bytes) -> str | None:
    """The plaintext, or None when no configured key opens it."""
    try:
        return fernet.decrypt(ciphertext).decode()
    except InvalidToken:
        return None
