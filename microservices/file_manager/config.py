"""Settings of the file manager, read from `FILE_MANAGER_*` and the platform-wide variables."""

from typing import ClassVar

from pydantic_settings import SettingsConfigDict

from microservices.common.settings import ServiceSettings


class Settings(ServiceSettings):
    """File manager settings."""

    model_config = SettingsConfigDict(env_prefix="FILE_MANAGER_", extra="ignore")

    service_name: ClassVar[str] = "file_manager"
    port: int = 8004
