"""Settings of the service registry, read from `SERVICE_REGISTRY_*` and the platform-wide variables."""

from typing import ClassVar

from pydantic_settings import SettingsConfigDict

from microservices.common.settings import ServiceSettings


class Settings(ServiceSettings):
    """Service registry settings."""

    model_config = SettingsConfigDict(env_prefix="SERVICE_REGISTRY_", extra="ignore")

    service_name: ClassVar[str] = "service_registry"
    port: int = 8002
