"""Settings of the service registry, read from `SERVICE_REGISTRY_*` and the platform-wide variables."""

from typing import ClassVar

from pydantic_settings import SettingsConfigDict

from microservices.common.settings import ServiceSettings


class Settings(ServiceSettings):
    """Service registry settings."""

    model_config = SettingsConfigDict(env_prefix="SERVICE_REGISTRY_", extra="ignore")

    service_name: ClassVar[str] = "service_registry"
    port: int = 8002

    # The background health checker; tests of other parts turn it off.
    health_check_enabled: bool = True
    health_check_tick_s: float = 5.0
    health_interval_healthy_s: float = 900.0
    health_interval_unhealthy_s: float = 60.0
    # The Michigan TLS handshake was seen to take over 10 s from containers.
    health_connect_timeout_s: float = 30.0
    health_total_timeout_s: float = 45.0
    # Dead services hold a slot for the whole timeout: 1000 services, 100 dead, need about 250 for a 3 s cycle.
    health_max_concurrency: int = 250
    health_refresh_min_interval_s: float = 10.0
    health_deactivate_after_days: float = 30.0
    health_cache_prefix: str = "service_registry:health:"
    health_log_retention_days: int = 90

    sync_timeout_s: float = 60.0
    events_enabled: bool = True
