"""Settings of the monitoring service, read from `MONITORING_*` and the platform-wide variables."""

from typing import ClassVar

from pydantic_settings import SettingsConfigDict

from microservices.common.settings import ServiceSettings


class Settings(ServiceSettings):
    """Monitoring service settings."""

    model_config = SettingsConfigDict(env_prefix="MONITORING_", extra="ignore")

    service_name: ClassVar[str] = "monitoring"
    port: int = 8006
    # A component that has not answered by then is reported unhealthy rather than waited for.
    component_timeout_s: float = 3.0
    # Celery worker pools whose heartbeat is expected (see microservices.common.heartbeat).
    celery_components: list[str] = ["jobs", "django"]
