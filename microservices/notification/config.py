"""Settings of the notification service, read from `NOTIFICATION_*` and the platform-wide variables."""

from typing import ClassVar

from pydantic_settings import SettingsConfigDict

from microservices.common.settings import ServiceSettings


class Settings(ServiceSettings):
    """Notification service settings."""

    model_config = SettingsConfigDict(env_prefix="NOTIFICATION_", extra="ignore")

    service_name: ClassVar[str] = "notification"
    port: int = 8005
