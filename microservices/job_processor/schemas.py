"""Request and response bodies of the job processor."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

Build = Literal["hg19", "hg38"]
Mode = Literal["imputation", "qc_only"]


class JobCreate(BaseModel):
    """A new imputation job: where to send which uploaded files, and how."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=2000)
    service_id: int = Field(ge=1)
    reference_panel_id: int = Field(ge=1)
    build: Build = "hg19"
    phasing: bool = True
    population: str | None = Field(default=None, max_length=50)
    mode: Mode = "imputation"
    r2_filter: float | None = Field(default=None, ge=0, le=1)
    # UUIDs, as the file manager issues them: an id goes into the file manager's URL paths.
    input_file_ids: list[uuid.UUID] = Field(min_length=1, max_length=50)
    run_at: datetime | None = None

    @field_validator("input_file_ids")
    @classmethod
    def _distinct(cls, value: list[uuid.UUID]) -> list[uuid.UUID]:
        if len(set(value)) != len(value):
            raise ValueError("each input file may be given once")
        return value

    @field_validator("mode", mode="before")
    @classmethod
    def _legacy_mode(cls, value: Any) -> Any:
        # Michigan 1.x spells QC-only `qconly`; the system we replace passed it through.
        return "qc_only" if value in ("qconly", "qc-only") else value


class StatusChange(BaseModel):
    """One entry of a job's status history."""

    model_config = ConfigDict(from_attributes=True)

    old_status: str | None
    new_status: str
    message: str | None
    occurred_at: datetime


class ResultFile(BaseModel):
    name: str
    file_id: str
    size_bytes: int
    sha256: str


class JobRead(BaseModel):
    """A job as its owner sees it."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    user_id: int
    name: str
    description: str | None
    service_id: int
    service_name: str | None
    api_type: str
    reference_panel_id: int
    build: str
    phasing: bool
    population: str | None
    mode: str
    r2_filter: float | None
    input_file_ids: list[str]
    status: str
    status_message: str | None
    progress: int
    remote_job_id: str | None
    error_message: str | None
    result_files: list[ResultFile]
    has_result_password: bool = False
    retry_of_id: uuid.UUID | None
    batch_id: uuid.UUID | None
    template_id: int | None = None
    run_at: datetime | None
    created_at: datetime
    updated_at: datetime
    submitted_at: datetime | None
    started_at: datetime | None
    completed_at: datetime | None


class JobDetail(JobRead):
    """A job with its status history, oldest first."""

    status_history: list[StatusChange]


class JobCancel(BaseModel):
    reason: str | None = Field(default=None, max_length=500)


class ResultPassword(BaseModel):
    """The password the remote server encrypted the results with (Michigan)."""

    job_id: uuid.UUID
    password: str


class JobLogs(BaseModel):
    job_id: uuid.UUID
    logs: str


class BatchCreate(BaseModel):
    """Several jobs at once (several inputs, or the same inputs to several services); each reported on its own."""

    model_config = ConfigDict(extra="forbid")

    items: list[JobCreate] = Field(min_length=1, max_length=50)


class ServicePanel(BaseModel):
    service_id: int = Field(ge=1)
    reference_panel_id: int = Field(ge=1)


class MultiServiceCreate(BaseModel):
    """One input sent to several service/panel pairs (the form of the system we replace)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=2000)
    build: Build = "hg19"
    phasing: bool = True
    population: str | None = Field(default=None, max_length=50)
    mode: Mode = "imputation"
    r2_filter: float | None = Field(default=None, ge=0, le=1)
    input_file_ids: list[uuid.UUID] = Field(min_length=1, max_length=50)
    run_at: datetime | None = None
    targets: list[ServicePanel] = Field(min_length=1, max_length=20)

    def items(self) -> list[JobCreate]:
        common = self.model_dump(exclude={"targets"})
        return [JobCreate(**common, **target.model_dump()) for target in self.targets]


class BatchItemResult(BaseModel):
    index: int
    status_code: int
    job: JobRead | None = None
    error: str | None = None
    detail: str | None = None
    problems: list[dict[str, Any]] | None = None


class BatchRead(BaseModel):
    batch_id: uuid.UUID
    created: int
    failed: int
    results: list[BatchItemResult]


class TemplateCreate(BaseModel):
    """A saved set of job parameters."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=2000)
    service_id: int = Field(ge=1)
    reference_panel_id: int = Field(ge=1)
    build: Build = "hg19"
    phasing: bool = True
    population: str | None = Field(default=None, max_length=50)
    mode: Mode = "imputation"
    r2_filter: float | None = Field(default=None, ge=0, le=1)


class TemplateUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=2000)
    service_id: int | None = Field(default=None, ge=1)
    reference_panel_id: int | None = Field(default=None, ge=1)
    build: Build | None = None
    phasing: bool | None = None
    population: str | None = Field(default=None, max_length=50)
    mode: Mode | None = None
    r2_filter: float | None = Field(default=None, ge=0, le=1)


class TemplateRead(TemplateCreate):
    model_config = ConfigDict(from_attributes=True)

    id: int
    user_id: int
    created_at: datetime
    updated_at: datetime


class TemplateJobCreate(BaseModel):
    """A job from a template: what changes from one run to the next."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=200)
    input_file_ids: list[uuid.UUID] = Field(min_length=1, max_length=50)
    run_at: datetime | None = None
