"""Settings of the job processor, read from `JOB_PROCESSOR_*` and the platform-wide variables."""

from typing import ClassVar

from pydantic_settings import SettingsConfigDict

from microservices.common.settings import ServiceSettings


class Settings(ServiceSettings):
    """Job processor settings."""

    model_config = SettingsConfigDict(env_prefix="JOB_PROCESSOR_", extra="ignore")

    service_name: ClassVar[str] = "job_processor"
    port: int = 8003
