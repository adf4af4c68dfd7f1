"""Settings of the user service, read from `USER_SERVICE_*` and the platform-wide variables."""

from typing import ClassVar

from pydantic_settings import SettingsConfigDict

from microservices.common.settings import ServiceSettings


class Settings(ServiceSettings):
    """User service settings."""

    model_config = SettingsConfigDict(env_prefix="USER_SERVICE_", extra="ignore")

    service_name: ClassVar[str] = "user_service"
    port: int = 8001
