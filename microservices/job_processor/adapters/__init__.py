"""Protocol adapters, one per api_type, behind one interface (`base.Adapter`)."""

from __future__ import annotations

from typing import Any

import httpx

from microservices.job_processor.adapters.base import (
    Adapter,
    FileSource,
    InputFile,
    PermanentRemoteError,
    RemoteError,
    RemoteOutput,
    RemoteStatus,
    Submission,
    TransientRemoteError,
)
from microservices.job_processor.adapters.michigan import MichiganAdapter
from microservices.job_processor.adapters.wes import DnastackAdapter, WesAdapter
from microservices.job_processor.config import Settings
from microservices.job_processor.peers import Credential

__all__ = [
    "Adapter",
    "InputFile",
    "PermanentRemoteError",
    "RemoteError",
    "RemoteOutput",
    "RemoteStatus",
    "Submission",
    "TransientRemoteError",
    "make_adapter",
]


def make_adapter(
    *,
    api_type: str,
    base_url: str,
    http: httpx.AsyncClient,
    credential: Credential | None,
    files: FileSource,
    settings: Settings,
) -> Adapter:
    """The adapter for a service's api_type."""
    common: dict[str, Any] = {
        "base_url": base_url,
        "http": http,
        "credential": credential,
        "files": files,
        "timeout_s": settings.remote_timeout_s,
        "transfer_timeout_s": settings.transfer_timeout_s,
    }
    if api_type == "michigan":
        return MichiganAdapter(**common)
    if api_type in ("ga4gh_wes", "dnastack"):
        wes: dict[str, Any] = dict(
            workflow_dir=settings.wes_workflow_dir,
            workflow_file=settings.wes_workflow_file,
            engine=settings.wes_workflow_engine,
            type_version=settings.wes_workflow_type_version,
            **common,
        )
        if api_type == "dnastack":
            return DnastackAdapter(allow_http_token_url=settings.environment in ("development", "test"), **wes)
        return WesAdapter(**wes)
    raise PermanentRemoteError(f"No adapter speaks api_type {api_type!r}.")
