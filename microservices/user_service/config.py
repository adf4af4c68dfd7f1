"""Settings of the user service, read from `USER_SERVICE_*` and the platform-wide variables."""

import json
from pathlib import Path
from typing import ClassVar

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from microservices.common.settings import ServiceSettings

# The platform's own components, each of which may ask for a service-account token.
SERVICE_CLIENT_IDS = (
    "gateway",
    "django",
    "job_processor",
    "file_manager",
    "notification",
    "monitoring",
    "service_registry",
)


def _unprefixed(name: str) -> AliasChoices:
    """Read `USER_SERVICE_<NAME>` first, then the bare `<NAME>` the local run and compose set."""
    return AliasChoices(f"USER_SERVICE_{name}", name)


class Settings(ServiceSettings):
    """User service settings."""

    model_config = SettingsConfigDict(env_prefix="USER_SERVICE_", extra="ignore", populate_by_name=True)

    service_name: ClassVar[str] = "user_service"
    port: int = 8001

    # Where development and test keep generated keys, so that a restart keeps tokens valid.
    var_dir: Path = Field(default=Path("var"), validation_alias=_unprefixed("VAR_DIR"))

    # Signing key (PEM); outside development and test one of these must be set.
    jwt_private_key: SecretStr | None = None
    jwt_private_key_file: Path | None = None
    # The public key (PEM) of the previous signing key, still published while its tokens live out.
    jwt_previous_public_key: str | None = None
    access_token_ttl_s: int = 900
    service_token_ttl_s: int = 900
    refresh_token_ttl_s: int = 14 * 24 * 3600

    # Argon2id cost: OWASP's first recommended setting (19 MiB, 2 passes, 1 lane), about 0.1 s a hash here;
    # 64 MiB and 3 passes took 0.65 s, and over 2 s a login on a loaded two-core machine.
    password_hash_memory_kib: int = 19456
    password_hash_time_cost: int = 2
    password_hash_parallelism: int = 1

    registration_enabled: bool = True
    # JSON object client_id -> secret; a client absent from it uses HMAC-SHA256(INTERNAL_CLIENT_SECRET, client_id).
    client_secrets: SecretStr | None = None

    login_max_failures_per_account: int = 5
    login_max_failures_per_address: int = 20
    login_failure_window_s: int = 900

    credential_warning_days: int = 7
    # The service accounts that may read a user's decrypted external credentials; in production each needs its
    # own entry in `client_secrets`.
    credential_reader_clients: list[str] = ["job_processor"]
    # Publish audit entries as `user.action.logged` events (the outbox relay runs in the lifespan).
    events_enabled: bool = True

    bootstrap_admin_username: str | None = Field(default=None, validation_alias=_unprefixed("BOOTSTRAP_ADMIN_USERNAME"))
    bootstrap_admin_email: str | None = Field(default=None, validation_alias=_unprefixed("BOOTSTRAP_ADMIN_EMAIL"))
    bootstrap_admin_password: SecretStr | None = Field(
        default=None, validation_alias=_unprefixed("BOOTSTRAP_ADMIN_PASSWORD")
    )

    def client_secret_overrides(self) -> dict[str, str]:
        """The per-client secrets of `USER_SERVICE_CLIENT_SECRETS`; empty when unset or not a JSON object."""
        try:
            overrides = json.loads(self.client_secrets.get_secret_value() or "{}") if self.client_secrets else {}
        except json.JSONDecodeError:
            return {}
        if not isinstance(overrides, dict):
            return {}
        return {str(k): v for k, v in overrides.items() if isinstance(v, str) and v}

    @model_validator(mode="after")
    def _require_dedicated_reader_secrets(self) -> "Settings":
        # A secret derived from the shared one is only as safe as it: readers of plain credentials get their own.
        if self.environment in ("development", "test"):
            return self
        missing = [c for c in self.credential_reader_clients if c not in self.client_secret_overrides()]
        if missing:
            raise ValueError(
                f"USER_SERVICE_CLIENT_SECRETS has no secret for {', '.join(missing)}: in {self.environment} every "
                "client in USER_SERVICE_CREDENTIAL_READER_CLIENTS needs its own dedicated secret"
            )
        return self
