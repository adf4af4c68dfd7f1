"""Settings shared by every service: pydantic-settings with a prefix per service and a few platform-wide names."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import SecretStr, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, EnvSettingsSource, PydanticBaseSettingsSource, SettingsConfigDict

from microservices.common import __version__

Environment = Literal["development", "test", "production"]

# Values that must never protect anything outside development.
PLACEHOLDER_SECRETS = frozenset(
    {
        "",
        "changeme",
        "change-me",
        "change_me",
        "secret",
        "password",
        "placeholder",
        "dev",
        "development",
        "test",
    }
)

# Ports of the components, the one place they are written down.
DEFAULT_PORTS: dict[str, int] = {
    "gateway": 8000,
    "user_service": 8001,
    "service_registry": 8002,
    "job_processor": 8003,
    "file_manager": 8004,
    "notification": 8005,
    "monitoring": 8006,
    "django": 8010,
}

FASTAPI_SERVICES = (
    "gateway",
    "user_service",
    "service_registry",
    "job_processor",
    "file_manager",
    "notification",
    "monitoring",
)

# Databases of the services that own one.
DATABASE_NAMES: dict[str, str] = {
    "user_service": "user_management_db",
    "service_registry": "service_registry_db",
    "job_processor": "job_processing_db",
    "file_manager": "file_management_db",
    "notification": "notification_db",
    "monitoring": "monitoring_db",
    "django": "federated_imputation",
}

# Fields read without the service prefix too (the prefixed variable wins).
SHARED_FIELDS = frozenset(
    {
        "environment",
        "server_database_url",
        "redis_url",
        "log_level",
        "log_json",
        "gateway_url",
        "user_service_url",
        "service_registry_url",
        "job_processor_url",
        "file_manager_url",
        "notification_url",
        "monitoring_url",
        "django_url",
        "jwt_issuer",
        "jwt_audience",
        "jwt_internal_audience",
        "jwks_url",
        "fernet_key",
        "internal_client_secret",
        "cors_origins",
    }
)


def _default_url(name: str) -> str:
    return f"http://127.0.0.1:{DEFAULT_PORTS[name]}"


def is_placeholder(value: str) -> bool:
    """True for a secret that is empty, a well-known dummy, or marked as insecure."""
    lowered = value.strip().lower()
    return lowered in PLACEHOLDER_SECRETS or lowered.startswith(("insecure", "dev-", "changeme"))


class _SharedEnvSource(EnvSettingsSource):
    """Reads the platform-wide names without prefix, for the fields in SHARED_FIELDS only."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        if field_name not in SHARED_FIELDS:
            return None, field_name, False
        return super().get_field_value(field, field_name)


class ServiceSettings(BaseSettings):
    """Settings every service has; subclasses set `service_name` and their env prefix."""

    model_config = SettingsConfigDict(extra="ignore", env_prefix="")

    service_name: ClassVar[str] = "service"

    environment: Environment = "development"
    version: str = __version__
    host: str = "127.0.0.1"
    port: int = 0
    workers: int = 1

    # `DATABASE_URL` names the server; each service swaps in its own database name.
    server_database_url: str = "postgresql://postgres@127.0.0.1:5432/postgres"
    database_url: str | None = None
    database_pool_size: int = 5
    database_max_overflow: int = 10
    redis_url: str = "redis://127.0.0.1:6379"

    log_level: str = "INFO"
    log_json: bool = True
    access_log: bool = True

    gateway_url: str = _default_url("gateway")
    user_service_url: str = _default_url("user_service")
    service_registry_url: str = _default_url("service_registry")
    job_processor_url: str = _default_url("job_processor")
    file_manager_url: str = _default_url("file_manager")
    notification_url: str = _default_url("notification")
    monitoring_url: str = _default_url("monitoring")
    django_url: str = _default_url("django")

    jwt_issuer: str = "federated-imputation"
    jwt_audience: str = "federated-imputation-api"
    jwt_internal_audience: str = "federated-imputation-internal"
    jwks_url: str | None = None
    fernet_key: SecretStr | None = None
    # This component's service account for calls to other services (client-credentials grant).
    internal_client_id: str | None = None
    internal_client_secret: SecretStr | None = None

    http_connect_timeout_s: float = 5.0
    http_read_timeout_s: float = 30.0
    http_pool_timeout_s: float = 5.0
    http_max_connections: int = 100
    cors_origins: list[str] = []

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        shared = _SharedEnvSource(settings_cls, env_prefix="", case_sensitive=False)
        # DATABASE_URL (the server) must not be read as this service's own `database_url`.
        shared.env_vars = {("server_database_url" if k == "database_url" else k): v for k, v in shared.env_vars.items()}
        return init_settings, env_settings, shared, dotenv_settings, file_secret_settings

    @model_validator(mode="after")
    def _refuse_placeholder_secrets(self) -> ServiceSettings:
        if self.environment in ("development", "test"):
            return self
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, SecretStr) and is_placeholder(value.get_secret_value()):
                env_name = f"{self.model_config.get('env_prefix', '')}{name}".upper()
                raise ValueError(f"{env_name} is a placeholder; set a real secret in {self.environment}")
        return self

    @property
    def database_name(self) -> str | None:
        """The database this service owns, or None for a service without one."""
        return DATABASE_NAMES.get(self.service_name)

    def async_database_url(self) -> str:
        """SQLAlchemy URL of this service's database for asyncpg."""
        return self._database_url("postgresql+asyncpg")

    def sync_database_url(self) -> str:
        """SQLAlchemy URL of this service's database for psycopg2 (Celery, Alembic)."""
        return self._database_url("postgresql+psycopg2")

    def _database_url(self, driver: str) -> str:
        from sqlalchemy.engine import make_url  # here, so that the gateway never loads SQLAlchemy

        if self.database_url:
            url = make_url(self.database_url)
        else:
            url = make_url(self.server_database_url).set(database=self.database_name)
        return url.set(drivername=driver).render_as_string(hide_password=False)

    def redis_db_url(self, db: int) -> str:
        """The Redis server URL with database number `db`."""
        base = self.redis_url.rstrip("/")
        scheme, _, rest = base.partition("://")
        host = rest.split("/", 1)[0]
        return f"{scheme}://{host}/{db}"

    @property
    def resolved_jwks_url(self) -> str:
        """Where the user service publishes its signing keys."""
        return self.jwks_url or f"{self.user_service_url.rstrip('/')}/.well-known/jwks.json"

    def peer_urls(self) -> dict[str, str]:
        """Base URLs of every component, by component name."""
        return {name: getattr(self, f"{name}_url") for name in DEFAULT_PORTS}
