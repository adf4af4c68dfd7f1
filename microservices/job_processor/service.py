"""The job processor's domain logic: creating jobs, their states and history, listing, cancelling.

Functions take keyword arguments and a session, never HTTP objects, and only flush(): the caller commits.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time
from typing import Any

from cryptography.fernet import MultiFernet
from sqlalchemy import Select, func, or_, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, selectinload

from microservices.common.auth import Principal
from microservices.common.errors import AppError, BadRequest, Conflict, Forbidden, NotFound, Unprocessable
from microservices.common.events import JOB_STATUS_UPDATED, emit, emit_sync
from microservices.common.pagination import PageParams, paginate
from microservices.job_processor import preflight, states
from microservices.job_processor.crypto import decrypt, encrypt, new_result_password
from microservices.job_processor.models import IdempotencyKey, Job, JobStatusHistory, JobTemplate
from microservices.job_processor.peers import Peers
from microservices.job_processor.schemas import JobCreate, TemplateCreate, TemplateJobCreate, TemplateUpdate

PRODUCER = "job_processor"


class JobNotFound(NotFound):
    code = "job_not_found"


class PreflightFailed(Unprocessable):
    code = "preflight_failed"


class IdempotencyKeyReused(Conflict):
    code = "idempotency_key_reused"


class QuotaExceeded(Forbidden):
    code = "quota_exceeded"


class ServiceNotPermitted(Forbidden):
    code = "service_not_permitted"


# --- states and history ---------------------------------------------------------------------------------------------


def now() -> datetime:
    return datetime.now(UTC)


def _apply_status(job: Job, new_status: str, message: str | None) -> tuple[JobStatusHistory, dict[str, Any]]:
    old_status = job.status
    if old_status is not None:
        states.check_transition(old_status, new_status)
    at = now()
    job.status = new_status
    job.status_message = message
    if new_status == states.SUBMITTING and job.submitted_at is None:
        job.submitted_at = at
    if new_status == states.RUNNING and job.started_at is None:
        job.started_at = at
    if new_status in states.TERMINAL:
        job.completed_at = at
        job.next_poll_at = None
        if new_status == states.COMPLETED:
            job.progress = 100
        if new_status == states.FAILED:
            job.error_message = message
    history = JobStatusHistory(job_id=job.id, old_status=old_status, new_status=new_status, message=message)
    history.occurred_at = at
    payload = {
        "job_id": str(job.id),
        "user_id": job.user_id,
        "job_name": job.name,
        "service_id": job.service_id,
        "old_status": old_status,
        "new_status": new_status,
        "message": message,
        "occurred_at": at.isoformat(),
    }
    return history, payload


async def set_status(*, session: AsyncSession, job: Job, new_status: str, message: str | None = None) -> None:
    """Move a job to `new_status` (checked against the table), with a history row and an event, in one transaction."""
    history, payload = _apply_status(job, new_status, message)
    session.add(history)
    await emit(session, topic=JOB_STATUS_UPDATED, payload=payload, producer=PRODUCER)
    await session.flush()


def set_status_sync(*, session: Session, job: Job, new_status: str, message: str | None = None) -> None:
    """`set_status` for the Celery tasks."""
    history, payload = _apply_status(job, new_status, message)
    session.add(history)
    emit_sync(session, topic=JOB_STATUS_UPDATED, payload=payload, producer=PRODUCER)
    session.flush()


# --- creating -------------------------------------------------------------------------------------------------------


def request_fingerprint(job_in: JobCreate) -> str:
    """A stable hash of a create request, to tell a retried POST from a different one under the same key."""
    body = json.dumps(job_in.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(body.encode()).hexdigest()


async def _job_for_key(session: AsyncSession, *, user_id: int, key: str, fingerprint: str) -> Job | None:
    record = await session.scalar(
        select(IdempotencyKey).where(IdempotencyKey.user_id == user_id, IdempotencyKey.key == key)
    )
    if record is None:
        return None
    if record.request_hash != fingerprint:
        raise IdempotencyKeyReused(
            "This Idempotency-Key was already used for a different job request; use a new key for a new job."
        )
    return await session.get(Job, record.job_id)


@dataclass(frozen=True)
class Target:
    """What the registry says about the service and panel a job goes to."""

    service: dict[str, Any]
    panel: dict[str, Any]


async def check_permission(*, peers: Peers, user_id: int, service_id: int) -> int | None:
    """Raise unless the user may use the service; return the user's monthly quota there (None: unlimited)."""
    permissions = await peers.permissions(user_id)
    if permissions is None:
        raise ServiceNotPermitted("Your account has no access to imputation services; ask an administrator.")
    grants = {int(s["service_id"]): s for s in permissions.get("services") or []}
    if not permissions.get("all_services") and service_id not in grants:
        raise ServiceNotPermitted(
            f"You have no access to service {service_id}; ask an administrator to grant it to you or your group."
        )
    quota = grants.get(service_id, {}).get("monthly_quota")
    return int(quota) if quota is not None else None


async def resolve_target(*, peers: Peers, service_id: int, reference_panel_id: int) -> Target:
    """The service and panel of a job, checked to exist, to be active and to belong together."""
    service = await peers.service(service_id)
    if service is None:
        raise Unprocessable(
            f"There is no imputation service {service_id}; pick one from /services.", code="unknown_service"
        )
    if service.get("is_active") is False:
        raise Unprocessable(
            f"Service '{service.get('name')}' is not taking jobs at the moment (deactivated by an administrator).",
            code="service_inactive",
        )
    panels = await peers.panels(service_id)
    panel = next((p for p in panels if int(p["id"]) == reference_panel_id), None)
    if panel is None:
        raise Unprocessable(
            f"Reference panel {reference_panel_id} does not belong to service '{service.get('name')}'; pick one "
            f"from /reference-panels?service_id={service_id}.",
            code="panel_not_in_service",
        )
    if panel.get("is_active") is False:
        raise Unprocessable(
            f"Reference panel '{panel.get('name')}' is not active; pick another panel of this service.",
            code="panel_inactive",
        )
    return Target(service=service, panel=panel)


async def fetch_input_files(*, peers: Peers, user_id: int, file_ids: Sequence[uuid.UUID]) -> list[dict[str, Any]]:
    """The metadata of the user's input files; a file of someone else, or of no known owner, is reported as missing."""
    records = []
    for file_id in file_ids:
        record = await peers.file(str(file_id))
        if record is None or str(record.get("owner_id")) != str(user_id):
            raise Unprocessable(
                f"Input file {file_id} is not among your uploads: upload it with POST /files/upload first.",
                code="unknown_input_file",
            )
        records.append({**record, "id": str(file_id)})
    return records


def quota_lock_key(user_id: int, service_id: int) -> int:
    """The advisory lock that serialises the quota check of one user on one service."""
    digest = hashlib.sha256(f"job-quota:{user_id}:{service_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


async def _jobs_this_month(session: AsyncSession, *, user_id: int, service_id: int) -> int:
    """The jobs that count against the monthly quota: those created this month (UTC), except the ones that failed
    or were cancelled before the remote server ever had them, which cost it nothing."""
    # Held until the commit: a concurrent request counts only after this one's job is stored (or dropped).
    await session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": quota_lock_key(user_id, service_id)})
    start = datetime.combine(datetime.now(UTC).date().replace(day=1), time.min, tzinfo=UTC)
    never_sent = Job.status.in_(("failed", "cancelled")) & Job.remote_job_id.is_(None)
    count = await session.scalar(
        select(func.count(Job.id)).where(
            Job.user_id == user_id, Job.service_id == service_id, Job.created_at >= start, ~never_sent
        )
    )
    return int(count or 0)


async def create_job(
    *,
    session: AsyncSession,
    peers: Peers,
    fernet: MultiFernet,
    user_id: int,
    job_in: JobCreate,
    idempotency_key: str | None = None,
    retry_of: Job | None = None,
    batch_id: uuid.UUID | None = None,
    min_poll_interval_s: float = 1.0,
    poll_interval_override_s: float | None = None,
) -> tuple[Job, bool]:
    """Check and store a new job (queued, or pending until `run_at`); return it and whether it is new."""
    fingerprint = request_fingerprint(job_in)
    if idempotency_key:
        existing = await _job_for_key(session, user_id=user_id, key=idempotency_key, fingerprint=fingerprint)
        if existing is not None:
            return existing, False
    quota = await check_permission(peers=peers, user_id=user_id, service_id=job_in.service_id)
    target = await resolve_target(
        peers=peers, service_id=job_in.service_id, reference_panel_id=job_in.reference_panel_id
    )
    files = await fetch_input_files(peers=peers, user_id=user_id, file_ids=job_in.input_file_ids)
    problems = preflight.check(
        service=target.service,
        panel=target.panel,
        files=files,
        build=job_in.build,
        phasing=job_in.phasing,
        population=job_in.population,
    )
    if problems:
        raise PreflightFailed(
            " ".join(p.message for p in problems), extra={"problems": [p.as_dict() for p in problems]}
        )
    if quota is not None and await _jobs_this_month(session, user_id=user_id, service_id=job_in.service_id) >= quota:
        raise QuotaExceeded(
            f"You have used your {quota} jobs this month on service '{target.service.get('name')}'; the quota "
            "renews on the 1st, or ask an administrator to raise it."
        )
    api_type = str(target.service["api_type"])
    job = Job(
        id=uuid.uuid4(),
        user_id=user_id,
        name=job_in.name,
        description=job_in.description,
        service_id=job_in.service_id,
        service_name=target.service.get("name"),
        api_type=api_type,
        reference_panel_id=job_in.reference_panel_id,
        panel_remote_id=str(target.panel.get("panel_id") or target.panel.get("name")),
        panel_parameters=dict(target.panel.get("parameters") or {}),
        build=job_in.build,
        phasing=job_in.phasing,
        population=job_in.population,
        mode=job_in.mode,
        r2_filter=job_in.r2_filter,
        input_file_ids=[str(file_id) for file_id in job_in.input_file_ids],
        input_files=[
            {key: f.get(key) for key in ("filename", "size_bytes", "sha256")} | {"id": str(f["id"])} for f in files
        ],
        progress=0,
        result_files=[],
        failures=0,
        poll_interval_s=poll_interval_override_s
        or max(min_poll_interval_s, float(target.service.get("poll_interval_s") or 30.0)),
        run_at=job_in.run_at,
        retry_of_id=retry_of.id if retry_of is not None else None,
        batch_id=batch_id,
    )
    if api_type == "michigan":
        job.result_password_encrypted = encrypt(fernet, new_result_password())
    if not idempotency_key:
        await _store_new_job(session=session, job=job, run_at=job_in.run_at)
        return job, True
    try:
        # The job, its status rows and events, and the key stand or fall together: when the same key arrives twice
        # at once, the loser's savepoint rolls back whole and nothing of its job is left.
        async with session.begin_nested():
            await _store_new_job(session=session, job=job, run_at=job_in.run_at)
            session.add(IdempotencyKey(user_id=user_id, key=idempotency_key, request_hash=fingerprint, job_id=job.id))
    except IntegrityError:
        existing = await _job_for_key(session, user_id=user_id, key=idempotency_key, fingerprint=fingerprint)
        if existing is None:
            raise
        return existing, False
    return job, True


async def _store_new_job(*, session: AsyncSession, job: Job, run_at: datetime | None) -> None:
    session.add(job)
    await set_status(session=session, job=job, new_status=states.PENDING, message="Job created.")
    if run_at is None or run_at <= now():
        await set_status(session=session, job=job, new_status=states.QUEUED, message="Waiting to be submitted.")


# --- reading --------------------------------------------------------------------------------------------------------


# The job list's `sort` fields; "-" in front sorts descending. Ties are broken by id, so pages never overlap.
SORT_COLUMNS = {
    "created_at": Job.created_at,
    "updated_at": Job.updated_at,
    "name": Job.name,
    "status": Job.status,
}
DEFAULT_SORT = "-created_at"


def sort_order(sort: str) -> list[Any]:
    """ORDER BY clauses for a `sort` value such as `name` or `-created_at`, with id as the tie-breaker."""
    descending = sort.startswith("-")
    column = SORT_COLUMNS.get(sort.removeprefix("-"))
    if column is None:
        fields = ", ".join(f"{field}, -{field}" for field in SORT_COLUMNS)
        raise BadRequest(f"Cannot sort jobs by {sort!r}; sort by one of {fields}.")
    return [column.desc() if descending else column.asc(), Job.id]


@dataclass(frozen=True)
class JobFilters:
    status: Sequence[str] = ()
    service_id: int | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    search: str | None = None
    user_id: int | None = None
    sort: str = DEFAULT_SORT


def _visible_to(statement: Select[Any], principal: Principal) -> Select[Any]:
    if principal.is_admin or principal.is_service:
        return statement
    return statement.where(Job.user_id == (principal.user_id if principal.user_id is not None else -1))


async def list_jobs(
    *, session: AsyncSession, principal: Principal, filters: JobFilters, params: PageParams
) -> tuple[list[Job], int]:
    """The caller's jobs (everyone's for an admin), filtered, in `filters.sort` order (newest first by default)."""
    statement = _visible_to(select(Job), principal).order_by(*sort_order(filters.sort))
    if filters.status:
        statement = statement.where(Job.status.in_(filters.status))
    if filters.service_id is not None:
        statement = statement.where(Job.service_id == filters.service_id)
    if filters.created_after is not None:
        statement = statement.where(Job.created_at >= filters.created_after)
    if filters.created_before is not None:
        statement = statement.where(Job.created_at < filters.created_before)
    if filters.user_id is not None:
        statement = statement.where(Job.user_id == filters.user_id)
    if filters.search:
        escaped = filters.search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        pattern = f"%{escaped}%"
        statement = statement.where(or_(Job.name.ilike(pattern), Job.description.ilike(pattern)))
    return await paginate(session, statement, params)


async def get_job(*, session: AsyncSession, job_id: uuid.UUID, principal: Principal, history: bool = False) -> Job:
    """A job the caller may see (its owner, an admin or a service account); 404 for anyone else."""
    statement = _visible_to(select(Job).where(Job.id == job_id), principal)
    if history:
        statement = statement.options(selectinload(Job.history))
    job = await session.scalar(statement)
    if job is None:
        raise JobNotFound(f"There is no job {job_id}.")
    return job


async def get_job_for_update(*, session: AsyncSession, job_id: uuid.UUID, principal: Principal) -> Job:
    """`get_job`, with the row locked until the transaction ends."""
    statement = _visible_to(select(Job).where(Job.id == job_id), principal).with_for_update()
    job = await session.scalar(statement)
    if job is None:
        raise JobNotFound(f"There is no job {job_id}.")
    return job


async def get_history(*, session: AsyncSession, job: Job) -> list[JobStatusHistory]:
    """A job's status history, oldest first."""
    rows = await session.scalars(
        select(JobStatusHistory).where(JobStatusHistory.job_id == job.id).order_by(JobStatusHistory.id)
    )
    return list(rows)


def result_password(*, job: Job, principal: Principal, fernet: MultiFernet) -> str:
    """The plaintext result password, for the job's owner only."""
    if principal.user_id != job.user_id:
        raise JobNotFound(f"There is no result password of job {job.id} for you.")
    if job.result_password_encrypted is None:
        raise NotFound("This job's results are not password-protected.", code="no_result_password")
    password = decrypt(fernet, job.result_password_encrypted)
    if password is None:
        raise AppError("The result password cannot be decrypted with the configured key.", status_code=500)
    return password


# --- changing -------------------------------------------------------------------------------------------------------


async def cancel_job(*, session: AsyncSession, job: Job, reason: str | None = None) -> bool:
    """Cancel a live job; return True when a remote job may exist and must be cancelled there too."""
    if job.status in states.TERMINAL:
        raise states.InvalidTransition(job.status, states.CANCELLED)
    remote = job.status in states.REMOTE
    await set_status(session=session, job=job, new_status=states.CANCELLED, message=reason or "Cancelled by the user.")
    return remote


def retry_request(job: Job) -> JobCreate:
    """The create request of a new attempt of `job`."""
    if job.status not in (states.FAILED, states.CANCELLED):
        raise Conflict(f"Only failed or cancelled jobs can be retried; this one is {job.status}.", code="not_retryable")
    return JobCreate(
        name=job.name,
        description=job.description,
        service_id=job.service_id,
        reference_panel_id=job.reference_panel_id,
        build=job.build,
        phasing=job.phasing,
        population=job.population,
        mode=job.mode,
        r2_filter=job.r2_filter,
        input_file_ids=list(job.input_file_ids),
    )


@dataclass(frozen=True)
class BatchOutcome:
    index: int
    job: Job | None = None
    error: AppError | None = None


async def create_batch(
    *,
    session: AsyncSession,
    peers: Peers,
    fernet: MultiFernet,
    user_id: int,
    items: Sequence[JobCreate],
    min_poll_interval_s: float = 1.0,
    poll_interval_override_s: float | None = None,
) -> tuple[uuid.UUID, list[BatchOutcome]]:
    """Create each job on its own (a savepoint each): one refused item leaves the others standing."""
    batch_id = uuid.uuid4()
    outcomes: list[BatchOutcome] = []
    for index, item in enumerate(items):
        try:
            async with session.begin_nested():
                job, _ = await create_job(
                    session=session,
                    peers=peers,
                    fernet=fernet,
                    user_id=user_id,
                    job_in=item,
                    batch_id=batch_id,
                    min_poll_interval_s=min_poll_interval_s,
                    poll_interval_override_s=poll_interval_override_s,
                )
            outcomes.append(BatchOutcome(index=index, job=job))
        except AppError as exc:
            outcomes.append(BatchOutcome(index=index, error=exc))
    return batch_id, outcomes


# --- templates ------------------------------------------------------------------------------------------------------


class TemplateNotFound(NotFound):
    code = "template_not_found"


async def create_template(*, session: AsyncSession, user_id: int, template_in: TemplateCreate) -> JobTemplate:
    """Save a parameter set under a name unique to the user."""
    template = JobTemplate(user_id=user_id, **template_in.model_dump())
    try:
        async with session.begin_nested():
            session.add(template)
    except IntegrityError as exc:
        raise Conflict(f"You already have a template named '{template_in.name}'.", code="template_exists") from exc
    return template


async def list_templates(*, session: AsyncSession, user_id: int, params: PageParams) -> tuple[list[JobTemplate], int]:
    """The user's templates, by name."""
    statement = select(JobTemplate).where(JobTemplate.user_id == user_id).order_by(JobTemplate.name)
    return await paginate(session, statement, params)


async def get_template(*, session: AsyncSession, template_id: int, user_id: int) -> JobTemplate:
    """One of the user's templates (another user's is not found)."""
    template = await session.get(JobTemplate, template_id)
    if template is None or template.user_id != user_id:
        raise TemplateNotFound(f"There is no template {template_id}.")
    return template


async def update_template(*, session: AsyncSession, template: JobTemplate, changes: TemplateUpdate) -> JobTemplate:
    """Change some of a template's fields."""
    for key, value in changes.model_dump(exclude_unset=True).items():
        setattr(template, key, value)
    try:
        async with session.begin_nested():
            await session.flush()
    except IntegrityError as exc:
        raise Conflict(f"You already have a template named '{template.name}'.", code="template_exists") from exc
    return template


async def delete_template(*, session: AsyncSession, template: JobTemplate) -> None:
    await session.delete(template)
    await session.flush()


def job_from_template(template: JobTemplate, job_in: TemplateJobCreate) -> JobCreate:
    """The create request of a job started from a template."""
    return JobCreate(
        name=job_in.name or template.name,
        description=template.description,
        service_id=template.service_id,
        reference_panel_id=template.reference_panel_id,
        build=template.build,
        phasing=template.phasing,
        population=template.population,
        mode=template.mode,
        r2_filter=template.r2_filter,
        input_file_ids=job_in.input_file_ids,
        run_at=job_in.run_at,
    )
