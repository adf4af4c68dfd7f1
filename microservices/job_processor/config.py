"""Settings of the job processor, read from `JOB_PROCESSOR_*` and the platform-wide variables."""

import os
from pathlib import Path
from typing import ClassVar

from pydantic_settings import SettingsConfigDict

from microservices.common.settings import ServiceSettings


class Settings(ServiceSettings):
    """Job processor settings."""

    model_config = SettingsConfigDict(env_prefix="JOB_PROCESSOR_", extra="ignore")

    service_name: ClassVar[str] = "job_processor"
    port: int = 8003
    var_dir: Path = Path(os.environ.get("VAR_DIR", "var"))

    # How often beat looks for due work, and the bounds of the per-job polling interval.
    poll_tick_s: float = 5.0
    task_visibility_timeout_s: int = 3600
    min_poll_interval_s: float = 1.0
    # Poll every N seconds whatever the registry's polite interval says: local fakes and tests only.
    poll_interval_override_s: float | None = None
    # Tests only: a pause between a remote submission and its database record, the window a crash test aims at.
    pause_after_submit_s: float = 0.0
    max_backoff_s: float = 300.0
    # A job whose remote side keeps failing (timeouts, 5xx, refused connections) fails after this long.
    remote_failure_deadline_s: float = 6 * 3600.0
    # A submission claimed by a worker that never finished it is taken up again after this long.
    stale_submission_s: float = 60.0
    # Timeout for remote calls; downloads and uploads of results get a longer read timeout.
    remote_timeout_s: float = 30.0
    transfer_timeout_s: float = 600.0
    # The workflow a WES node runs when its registry entry names none (shipped in `workflows/`).
    wes_workflow_dir: Path = Path(__file__).resolve().parents[2] / "workflows" / "beagle-imputation"
    wes_workflow_file: str = "beagle-imputation.cwl"
    wes_workflow_engine: str = "cwltool"
    wes_workflow_type_version: str = "v1.2"
