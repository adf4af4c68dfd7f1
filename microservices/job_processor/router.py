"""Endpoints of the job processor: thin, every one authorised; the work is in `service`."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request, Response, status
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from microservices.common.auth import CurrentPrincipal
from microservices.common.db import SessionDep
from microservices.common.errors import BadRequest
from microservices.common.pagination import Page, PageParamsDep
from microservices.job_processor import service, states
from microservices.job_processor.dependencies import EnqueueDep, FernetDep, PeersDep, UserPrincipal, ValidJob
from microservices.job_processor.models import Job, JobStatusHistory
from microservices.job_processor.schemas import (
    JobCancel,
    JobCreate,
    JobDetail,
    JobLogs,
    JobRead,
    ResultPassword,
    StatusChange,
)

router = APIRouter(tags=["jobs"])


def job_read(job: Job) -> JobRead:
    return JobRead.model_validate(job).model_copy(
        update={"has_result_password": job.result_password_encrypted is not None}
    )


def job_detail(job: Job, history: list[JobStatusHistory]) -> JobDetail:
    return JobDetail(**job_read(job).model_dump(), status_history=[StatusChange.model_validate(h) for h in history])


def _validate(model: type[JobCreate], data: Any) -> JobCreate:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]) from exc


async def _parse_create(request: Request) -> JobCreate:
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith("application/json"):
        raise BadRequest("Send the job as JSON (application/json).", code="unsupported_media_type")
    try:
        data = await request.json()
    except ValueError as exc:
        raise BadRequest("The body is not valid JSON.", code="invalid_json") from exc
    return _validate(JobCreate, data)


@router.post(
    "/jobs",
    status_code=status.HTTP_201_CREATED,
    response_model=JobRead,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/JobCreate"}}},
        }
    },
)
async def create_job(
    request: Request,
    response: Response,
    session: SessionDep,
    principal: UserPrincipal,
    peers: PeersDep,
    fernet: FernetDep,
    enqueue: EnqueueDep,
    idempotency_key: Annotated[str | None, Header(max_length=255)] = None,
) -> JobRead:
    """Create an imputation job from uploaded files; an `Idempotency-Key` makes a retried request safe."""
    job_in = await _parse_create(request)
    assert principal.user_id is not None
    job, created = await service.create_job(
        session=session,
        peers=peers,
        fernet=fernet,
        user_id=principal.user_id,
        job_in=job_in,
        idempotency_key=idempotency_key,
        min_poll_interval_s=request.app.state.settings.min_poll_interval_s,
        poll_interval_override_s=request.app.state.settings.poll_interval_override_s,
    )
    await session.commit()
    if created and job.status == states.QUEUED:
        await enqueue("jobs.submit", [str(job.id)])
    if not created:
        response.status_code = status.HTTP_200_OK
        response.headers["Idempotent-Replayed"] = "true"
    return job_read(job)


@router.get("/jobs", response_model=Page[JobRead])
async def list_jobs(
    session: SessionDep,
    principal: CurrentPrincipal,
    params: PageParamsDep,
    status_: Annotated[list[str] | None, Query(alias="status", description="One or more job states")] = None,
    service_id: int | None = None,
    created_after: datetime | date | None = None,
    created_before: datetime | date | None = None,
    search: Annotated[str | None, Query(max_length=200)] = None,
    user_id: Annotated[int | None, Query(description="Admins only: one user's jobs")] = None,
) -> Page[JobRead]:
    """The caller's jobs (an admin sees everyone's), newest first, filtered by state, service, date and text."""
    unknown = [s for s in status_ or [] if s not in states.STATUSES]
    if unknown:
        raise BadRequest(f"Unknown job state {unknown[0]!r}; states are {', '.join(states.STATUSES)}.")
    filters = service.JobFilters(
        status=status_ or (),
        service_id=service_id,
        created_after=_as_datetime(created_after),
        created_before=_as_datetime(created_before),
        search=search,
        user_id=user_id if principal.is_admin or principal.is_service else None,
    )
    jobs, total = await service.list_jobs(session=session, principal=principal, filters=filters, params=params)
    return Page[JobRead](items=[job_read(j) for j in jobs], total=total, page=params.page, page_size=params.page_size)


def _as_datetime(value: datetime | date | None) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    return datetime(value.year, value.month, value.day, tzinfo=datetime.now().astimezone().tzinfo)


@router.get("/jobs/{job_id}", response_model=JobDetail)
async def get_job(job: ValidJob, session: SessionDep) -> JobDetail:
    """One job with its status history."""
    return job_detail(job, await service.get_history(session=session, job=job))


@router.get("/jobs/{job_id}/status-updates", response_model=list[StatusChange])
async def status_updates(job: ValidJob, session: SessionDep) -> list[StatusChange]:
    """A job's state changes, oldest first (the form the system we replace served)."""
    return [StatusChange.model_validate(h) for h in await service.get_history(session=session, job=job)]


@router.post("/jobs/{job_id}/cancel", response_model=JobRead)
async def cancel_job(
    job_id: uuid.UUID,
    session: SessionDep,
    principal: CurrentPrincipal,
    enqueue: EnqueueDep,
    body: JobCancel | None = None,
) -> JobRead:
    """Cancel a live job, here and on the remote server."""
    job = await service.get_job_for_update(session=session, job_id=job_id, principal=principal)
    remote = await service.cancel_job(session=session, job=job, reason=body.reason if body else None)
    await session.commit()
    if remote:
        await enqueue("jobs.cancel_remote", [str(job.id)])
    return job_read(job)


@router.post("/jobs/{job_id}/retry", response_model=JobRead, status_code=status.HTTP_201_CREATED)
async def retry_job(
    request: Request,
    job: ValidJob,
    session: SessionDep,
    principal: UserPrincipal,
    peers: PeersDep,
    fernet: FernetDep,
    enqueue: EnqueueDep,
) -> JobRead:
    """Start a new attempt of a failed or cancelled job, with the same inputs and parameters."""
    job_in = service.retry_request(job)
    new_job, _ = await service.create_job(
        session=session,
        peers=peers,
        fernet=fernet,
        user_id=job.user_id,
        job_in=job_in,
        retry_of=job,
        min_poll_interval_s=request.app.state.settings.min_poll_interval_s,
        poll_interval_override_s=request.app.state.settings.poll_interval_override_s,
    )
    await session.commit()
    await enqueue("jobs.submit", [str(new_job.id)])
    return job_read(new_job)


@router.get("/jobs/{job_id}/logs", response_model=JobLogs)
async def job_logs(job: ValidJob) -> JobLogs:
    """The remote server's step messages, as text."""
    return JobLogs(job_id=job.id, logs=job.logs or "")


@router.get("/jobs/{job_id}/result-password", response_model=ResultPassword)
async def get_result_password(job: ValidJob, principal: CurrentPrincipal, fernet: FernetDep) -> ResultPassword:
    """The password the results are encrypted with; only the job's owner may read it."""
    return ResultPassword(job_id=job.id, password=service.result_password(job=job, principal=principal, fernet=fernet))
