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

    # The background sampler: how often every component is probed and the alert rules evaluated.
    sampler_enabled: bool = True
    sample_interval_s: float = 15.0
    raw_retention_days: int = 7
    hourly_retention_days: int = 90
    # The filesystem whose usage /metrics/system and the disk rule report.
    disk_path: str = "/"
    # Fewer finished jobs than this in the window never raise the failure-rate alert.
    job_failure_min_jobs: int = 5

    events_stream_prefix: str = "events:"
    consume_events: bool = True
    event_claim_idle_ms: int = 30_000
