"""Settings of the file manager, read from `FILE_MANAGER_*` and the platform-wide variables."""

import os
from pathlib import Path
from typing import ClassVar

from pydantic import SecretStr
from pydantic_settings import SettingsConfigDict

from microservices.common.settings import ServiceSettings

MB = 1024 * 1024


def _default_storage_dir() -> Path:
    # Under the run's VAR_DIR (local run, integration tests), else `var/files` beside the working directory.
    return Path(os.environ.get("VAR_DIR", "var")) / "files"


class Settings(ServiceSettings):
    """File manager settings."""

    model_config = SettingsConfigDict(env_prefix="FILE_MANAGER_", extra="ignore")

    service_name: ClassVar[str] = "file_manager"
    port: int = 8004

    # Local-disk storage root; files live at paths made from their ids, never from the uploaded file name.
    storage_dir: Path = _default_storage_dir()
    max_upload_mb: float = 500
    # Uploads by service accounts: result archives collected from imputation servers can be several GB.
    service_max_upload_mb: float = 50 * 1024
    # Every user's files together (inputs and results), checked on uploads by the user.
    user_quota_mb: float = 10 * 1024
    # Result files are deleted (metadata kept, marked expired) this many days after they were stored.
    result_retention_days: float = 30
    # Inputs are kept until deleted unless this is set.
    input_retention_days: float | None = None
    # How often the lifespan's retention task runs; 0 switches it off (the job processor's beat can call
    # `POST /files/cleanup` instead).
    cleanup_interval_s: float = 3600
    # Upload leftovers older than this (a process killed mid-upload) are removed by the retention task.
    stale_upload_after_s: float = 24 * 3600

    # Signed download URLs (GA4GH WES nodes fetch inputs by URL, without a bearer token).
    public_url: str | None = None
    signing_key: SecretStr = SecretStr("dev-file-manager-signing-key")
    signed_url_ttl_s: int = 3600
    signed_url_max_ttl_s: int = 7 * 24 * 3600

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * MB)

    @property
    def service_max_upload_bytes(self) -> int:
        return int(self.service_max_upload_mb * MB)

    @property
    def user_quota_bytes(self) -> int:
        return int(self.user_quota_mb * MB)

    @property
    def resolved_public_url(self) -> str:
        """The absolute base URL signed links point at."""
        return (self.public_url or self.file_manager_url).rstrip("/")
