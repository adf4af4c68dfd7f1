"""Endpoints of the job processor: thin, every one authorised; the work is in `service`."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Annotated, Any, TypeVar

from cryptography.fernet import MultiFernet
from fastapi import APIRouter, Header, Query, Request, Response, status
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError

from microservices.common.auth import CurrentPrincipal
from microservices.common.db import SessionDep
from microservices.common.errors import AppError, BadRequest, Unprocessable
from microservices.common.pagination import Page, PageParamsDep
from microservices.job_processor import legacy, service, states
from microservices.job_processor.dependencies import (
    Enqueue,
    EnqueueDep,
    FernetDep,
    PeersDep,
    UserPrincipal,
    ValidJob,
)
from microservices.job_processor.models import Job, JobStatusHistory
from microservices.job_processor.peers import Peers
from microservices.job_processor.schemas import (
    BatchCreate,
    BatchItemResult,
    BatchRead,
    JobCancel,
    JobCreate,
    JobDetail,
    JobLogs,
    JobRead,
    MultiServiceCreate,
    ResultPassword,
    StatusChange,
    TemplateCreate,
    TemplateJobCreate,
    TemplateRead,
    TemplateUpdate,
)

router = APIRouter(tags=["jobs"])
ModelT = TypeVar("ModelT", bound=BaseModel)


def job_read(job: Job) -> JobRead:
    return JobRead.model_validate(job).model_copy(
        update={"has_result_password": job.result_password_encrypted is not None}
    )


def job_detail(job: Job, history: list[JobStatusHistory]) -> JobDetail:
    return JobDetail(**job_read(job).model_dump(), status_history=[StatusChange.model_validate(h) for h in history])


def _validate(model: type[ModelT], data: Any) -> ModelT:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]) from exc


async def _json_body(request: Request) -> Any:
    try:
        return await request.json()
    except ValueError as exc:
        raise BadRequest("The body is not valid JSON.", code="invalid_json") from exc


def _is_form(request: Request) -> bool:
    return request.headers.get("content-type", "").startswith(("multipart/form-data", "application/x-www-form"))


async def _with_upload(request: Request, peers: Peers, model: type[ModelT]) -> tuple[ModelT, str | None]:
    """The request as `model`: JSON, or the legacy form whose `input_file` is stored first (its id returned)."""
    if not _is_form(request):
        return _validate(model, await _json_body(request)), None
    form = await legacy.read_form(request)
    if form.upload is None:
        return _validate(model, form.fields), None
    # Check the parameters before storing anything.
    _validate(model, {**form.fields, "input_file_ids": [str(uuid.UUID(int=0))]})
    stored = await peers.upload_input(
        form.upload,
        filename=form.upload.filename or "input.vcf.gz",
        authorization=request.headers.get("authorization", ""),
    )
    return _validate(model, {**form.fields, "input_file_ids": [str(stored["id"])]}), str(stored["id"])


@router.post(
    "/jobs",
    status_code=status.HTTP_201_CREATED,
    response_model=JobRead,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/JobCreate"}},
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["name", "service_id", "reference_panel_id", "input_file"],
                        "properties": {
                            "input_file": {"type": "string", "format": "binary"},
                            "name": {"type": "string"},
                            "service_id": {"type": "string"},
                            "reference_panel_id": {"type": "string"},
                            "build": {"type": "string"},
                            "phasing": {"type": "string"},
                            "population": {"type": "string"},
                        },
                    }
                },
            },
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
    """Create an imputation job from uploaded files (JSON), or from a VCF sent in `input_file` (the legacy form).

    An `Idempotency-Key` header makes a retried request return the first job instead of a second one."""
    job_in, uploaded = await _with_upload(request, peers, JobCreate)
    assert principal.user_id is not None
    try:
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
    except AppError:
        if uploaded is not None:
            await peers.delete_file(uploaded, authorization=request.headers.get("authorization", ""))
        raise
    await session.commit()
    if created and job.status == states.QUEUED:
        await enqueue("jobs.submit", [str(job.id)])
    if not created:
        response.status_code = status.HTTP_200_OK
        response.headers["Idempotent-Replayed"] = "true"
    return job_read(job)


async def _create_many(
    request: Request,
    session: SessionDep,
    user_id: int,
    peers: Peers,
    fernet: MultiFernet,
    enqueue: Enqueue,
    items: list[JobCreate],
    uploaded: str | None,
) -> BatchRead:
    settings = request.app.state.settings
    batch_id, outcomes = await service.create_batch(
        session=session,
        peers=peers,
        fernet=fernet,
        user_id=user_id,
        items=items,
        min_poll_interval_s=settings.min_poll_interval_s,
        poll_interval_override_s=settings.poll_interval_override_s,
    )
    results = [
        BatchItemResult(index=o.index, status_code=201, job=job_read(o.job))
        if o.job is not None
        else BatchItemResult(
            index=o.index,
            status_code=o.error.status_code if o.error else 500,
            error=o.error.code if o.error else "internal_error",
            detail=o.error.message if o.error else None,
            problems=o.error.extra.get("problems") if o.error else None,
        )
        for o in outcomes
    ]
    created = [o.job for o in outcomes if o.job is not None]
    if not created:
        if uploaded is not None:
            await peers.delete_file(uploaded, authorization=request.headers.get("authorization", ""))
        raise Unprocessable(
            f"None of the {len(items)} jobs could be created; see each result.",
            code="batch_refused",
            extra={"results": [r.model_dump(mode="json") for r in results]},
        )
    await session.commit()
    for job in created:
        if job.status == states.QUEUED:
            await enqueue("jobs.submit", [str(job.id)])
    return BatchRead(batch_id=batch_id, created=len(created), failed=len(items) - len(created), results=results)


@router.post("/jobs/batch", response_model=BatchRead, status_code=status.HTTP_201_CREATED)
async def create_batch(
    request: Request,
    session: SessionDep,
    principal: UserPrincipal,
    peers: PeersDep,
    fernet: FernetDep,
    enqueue: EnqueueDep,
    body: BatchCreate,
) -> BatchRead:
    """Several jobs at once (several inputs, or the same inputs to several service/panel pairs), each reported."""
    assert principal.user_id is not None
    return await _create_many(request, session, principal.user_id, peers, fernet, enqueue, body.items, None)


@router.post(
    "/jobs/multi-service",
    response_model=BatchRead,
    status_code=status.HTTP_201_CREATED,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/MultiServiceCreate"}}},
        }
    },
)
async def create_multi_service(
    request: Request,
    session: SessionDep,
    principal: UserPrincipal,
    peers: PeersDep,
    fernet: FernetDep,
    enqueue: EnqueueDep,
) -> BatchRead:
    """One input to several service/panel pairs: JSON with `targets`, or the legacy form with `input_file` and
    `service_ids` / `reference_panel_ids` (or `targets` as JSON)."""
    body, uploaded = await _with_upload(request, peers, MultiServiceCreate)
    assert principal.user_id is not None
    return await _create_many(request, session, principal.user_id, peers, fernet, enqueue, body.items(), uploaded)


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
    sort: Annotated[
        str,
        Query(
            max_length=20,
            description="created_at, updated_at, name or status; a leading '-' sorts descending (ties by id)",
        ),
    ] = service.DEFAULT_SORT,
) -> Page[JobRead]:
    """The caller's jobs (an admin sees everyone's), filtered by state, service, date and text, sorted by `sort`."""
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
        sort=sort,
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


# --- templates ------------------------------------------------------------------------------------------------------


@router.post("/templates", response_model=TemplateRead, status_code=status.HTTP_201_CREATED, tags=["templates"])
async def create_template(body: TemplateCreate, session: SessionDep, principal: UserPrincipal) -> TemplateRead:
    """Save a set of job parameters under a name."""
    assert principal.user_id is not None
    template = await service.create_template(session=session, user_id=principal.user_id, template_in=body)
    return TemplateRead.model_validate(template)


@router.get("/templates", response_model=Page[TemplateRead], tags=["templates"])
async def list_templates(session: SessionDep, principal: UserPrincipal, params: PageParamsDep) -> Page[TemplateRead]:
    """The caller's templates, by name."""
    assert principal.user_id is not None
    items, total = await service.list_templates(session=session, user_id=principal.user_id, params=params)
    return Page[TemplateRead](
        items=[TemplateRead.model_validate(t) for t in items], total=total, page=params.page, page_size=params.page_size
    )


@router.get("/templates/{template_id}", response_model=TemplateRead, tags=["templates"])
async def get_template(template_id: int, session: SessionDep, principal: UserPrincipal) -> TemplateRead:
    """One of the caller's templates."""
    assert principal.user_id is not None
    template = await service.get_template(session=session, template_id=template_id, user_id=principal.user_id)
    return TemplateRead.model_validate(template)


@router.patch("/templates/{template_id}", response_model=TemplateRead, tags=["templates"])
async def update_template(
    template_id: int, body: TemplateUpdate, session: SessionDep, principal: UserPrincipal
) -> TemplateRead:
    """Change a template."""
    assert principal.user_id is not None
    template = await service.get_template(session=session, template_id=template_id, user_id=principal.user_id)
    return TemplateRead.model_validate(await service.update_template(session=session, template=template, changes=body))


@router.delete("/templates/{template_id}", status_code=status.HTTP_204_NO_CONTENT, tags=["templates"])
async def delete_template(template_id: int, session: SessionDep, principal: UserPrincipal) -> Response:
    """Delete a template (jobs started from it stay)."""
    assert principal.user_id is not None
    template = await service.get_template(session=session, template_id=template_id, user_id=principal.user_id)
    await service.delete_template(session=session, template=template)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/templates/{template_id}/jobs", response_model=JobRead, status_code=status.HTTP_201_CREATED, tags=["templates"]
)
async def create_job_from_template(
    request: Request,
    template_id: int,
    body: TemplateJobCreate,
    session: SessionDep,
    principal: UserPrincipal,
    peers: PeersDep,
    fernet: FernetDep,
    enqueue: EnqueueDep,
) -> JobRead:
    """Start a job with a template's parameters and new input files."""
    assert principal.user_id is not None
    template = await service.get_template(session=session, template_id=template_id, user_id=principal.user_id)
    job, _ = await service.create_job(
        session=session,
        peers=peers,
        fernet=fernet,
        user_id=principal.user_id,
        job_in=service.job_from_template(template, body),
        min_poll_interval_s=request.app.state.settings.min_poll_interval_s,
        poll_interval_override_s=request.app.state.settings.poll_interval_override_s,
    )
    job.template_id = template.id
    await session.commit()
    if job.status == states.QUEUED:
        await enqueue("jobs.submit", [str(job.id)])
    return job_read(job)
