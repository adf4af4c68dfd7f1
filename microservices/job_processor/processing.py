"""What the Celery tasks do: submit, poll, collect and cancel jobs on the remote servers.

Database work is synchronous (psycopg2), remote work asynchronous (httpx, run with `asyncio.run`). Every step is
idempotent and guarded by a PostgreSQL advisory lock per job, which dies with a killed worker's connection:

- a job is submitted at most once: it is marked `submitting` before the remote call, and a worker that finds it
  `submitting` without a remote id first looks for a remote job carrying our job id (a tag or the job name);
- transient remote failures are retried with backoff, shown in the job's status message, and fail the job only
  after `remote_failure_deadline_s`;
- result files are fetched one by one into the file manager, each recorded as soon as it is stored, so a
  restarted collection never downloads a file twice (Michigan counts downloads).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import ssl
import tempfile
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any, TypeVar

import httpx
from sqlalchemy import Engine, and_, or_, select, text, update
from sqlalchemy.orm import Session, sessionmaker

from microservices.common.db import make_sync_sessionmaker
from microservices.common.errors import AppError
from microservices.common.http import make_http_client
from microservices.common.service_auth import ServiceTokenProvider, component_client_secret
from microservices.job_processor import service, states
from microservices.job_processor.adapters import (
    Adapter,
    InputFile,
    PermanentRemoteError,
    RemoteError,
    RemoteStatus,
    Submission,
    TransientRemoteError,
    make_adapter,
)
from microservices.job_processor.config import Settings
from microservices.job_processor.crypto import decrypt, make_fernet
from microservices.job_processor.models import Job
from microservices.job_processor.peers import Peers

logger = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass
class Runtime:
    """One worker process's settings and database engine, made on first use."""

    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]


@cache
def runtime() -> Runtime:
    settings = Settings()
    engine, sessions = make_sync_sessionmaker(settings.sync_database_url(), pool_size=settings.database_pool_size)
    return Runtime(settings=settings, engine=engine, sessions=sessions)


def now() -> datetime:
    return datetime.now(UTC)


# --- service token shared across tasks ------------------------------------------------------------------------------


class SharedTokenProvider(ServiceTokenProvider):
    """A ServiceTokenProvider whose token outlives one task's event loop: every thread of the worker shares it."""

    _shared: tuple[str, float] | None = None
    _shared_lock = threading.Lock()

    async def token(self) -> str:
        with SharedTokenProvider._shared_lock:
            shared = SharedTokenProvider._shared
        if shared is not None and time.monotonic() < shared[1]:
            return shared[0]
        token = await super().token()
        with SharedTokenProvider._shared_lock:
            SharedTokenProvider._shared = (token, time.monotonic() + 240.0)
        return token

    def forget(self) -> None:
        with SharedTokenProvider._shared_lock:
            SharedTokenProvider._shared = None
        super().forget()


@cache
def ssl_context() -> ssl.SSLContext:
    """One TLS context per worker process: building one reads the CA bundle, about 60 ms, too much per task."""
    return httpx.create_ssl_context()


@contextlib.asynccontextmanager
async def _peers(settings: Settings) -> Any:
    transport = httpx.AsyncHTTPTransport(
        verify=ssl_context(),
        limits=httpx.Limits(max_connections=settings.http_max_connections, max_keepalive_connections=20),
    )
    async with make_http_client(settings, transport=transport) as http:
        tokens = SharedTokenProvider(
            http=http,
            token_url=f"{settings.user_service_url.rstrip('/')}/auth/token",
            client_id=settings.internal_client_id or settings.service_name,
            client_secret=component_client_secret(settings),
        )
        yield Peers(settings=settings, http=http, tokens=tokens)


# Tests replace this to reach peers and remote servers in process.
PeersFactory = Callable[[Settings], Any]
peers_factory: PeersFactory = _peers


@dataclass(frozen=True)
class JobView:
    """The fields of a job the remote work needs, read in one transaction and used outside it."""

    id: str
    user_id: int
    name: str
    service_id: int
    service_name: str | None
    api_type: str
    remote_job_id: str | None
    submission: Submission


def _view(job: Job, password: str | None) -> JobView:
    inputs = [
        InputFile(
            file_id=str(f["id"]), filename=str(f.get("filename") or f"{f['id']}.vcf.gz"), size_bytes=f.get("size_bytes")
        )
        for f in job.input_files
    ]
    return JobView(
        id=str(job.id),
        user_id=job.user_id,
        name=job.name,
        service_id=job.service_id,
        service_name=job.service_name,
        api_type=job.api_type,
        remote_job_id=job.remote_job_id,
        submission=Submission(
            job_id=str(job.id),
            name=job.name,
            build=job.build,
            phasing=job.phasing,
            population=job.population,
            mode=job.mode,
            r2_filter=job.r2_filter,
            panel_remote_id=job.panel_remote_id,
            panel_parameters=dict(job.panel_parameters or {}),
            inputs=inputs,
            result_password=password,
        ),
    )


async def _with_adapter(view: JobView, work: Callable[[Adapter, Peers], Awaitable[T]]) -> T:
    """Run `work` with the job's adapter, its credentials fetched now and dropped after (never stored)."""
    settings = runtime().settings
    async with peers_factory(settings) as peers:
        try:
            record = await peers.service(view.service_id)
            if record is None:
                raise PermanentRemoteError(f"Service {view.service_id} is no longer registered.")
            credential = await peers.credential(user_id=view.user_id, service_id=view.service_id)
        except AppError as exc:
            raise TransientRemoteError(f"the platform could not prepare the call: {exc.message}") from exc
        adapter = make_adapter(
            api_type=view.api_type,
            base_url=str(record["base_url"]),
            http=peers.http,
            credential=credential,
            files=peers,
            settings=settings,
        )
        return await work(adapter, peers)


# --- locking --------------------------------------------------------------------------------------------------------


def _lock_key(job_id: str) -> int:
    return int.from_bytes(uuid.UUID(job_id).bytes[:8], "big", signed=True)


@contextlib.contextmanager
def job_lock(job_id: str) -> Iterator[bool]:
    """A session-level advisory lock on the job: False when another worker holds it. A killed worker's
    connection closes, and PostgreSQL releases its locks with it."""
    key = _lock_key(job_id)
    with runtime().engine.connect() as connection:
        acquired = bool(connection.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar())
        connection.commit()
        try:
            yield acquired
        finally:
            if acquired:
                connection.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                connection.commit()


def _load(session: Session, job_id: str, *, lock: bool = False) -> Job | None:
    return session.get(Job, uuid.UUID(job_id), with_for_update=lock)


# --- transient failures ---------------------------------------------------------------------------------------------


def _note_failure(job_id: str, error: RemoteError, *, action: str) -> None:
    """Back off after a failure that may pass; fail the job if it has lasted past the deadline."""
    settings = runtime().settings
    with runtime().sessions() as session:
        job = _load(session, job_id, lock=True)
        if job is None or job.status in states.TERMINAL:
            return
        at = now()
        if isinstance(error, PermanentRemoteError):
            service.set_status_sync(
                session=session, job=job, new_status=states.FAILED, message=f"Failed to {action}: {error}."
            )
            session.commit()
            return
        job.failures += 1
        job.failing_since = job.failing_since or at
        waited = (at - job.failing_since).total_seconds()
        where = job.service_name or f"service {job.service_id}"
        if waited >= settings.remote_failure_deadline_s:
            service.set_status_sync(
                session=session,
                job=job,
                new_status=states.FAILED,
                message=f"Gave up: could not {action} on {where} for {waited:.0f} s ({error}).",
            )
        else:
            backoff = min(
                settings.max_backoff_s,
                max(settings.min_poll_interval_s, job.poll_interval_s) * 2 ** min(job.failures - 1, 10),
            )
            job.next_poll_at = at + timedelta(seconds=backoff)
            job.status_message = f"Could not {action} on {where} ({error}); retrying in {backoff:.0f} s."
        session.commit()


def _succeeded(job: Job) -> None:
    job.failures = 0
    job.failing_since = None


def enqueue_task(task: str, args: list[Any]) -> None:
    """Send a Celery task by name; called after the commit its work depends on."""
    from microservices.job_processor.worker import app

    try:
        app.send_task(task, args=args)
    except Exception as exc:
        logger.warning("could not enqueue %s%s: %s", task, tuple(args), exc)


# --- submit ---------------------------------------------------------------------------------------------------------


def submit_job(job_id: str) -> str:
    """Submit a queued job (or finish a submission a dead worker left); returns what happened."""
    with job_lock(job_id) as acquired:
        if not acquired:
            return "busy"
        fernet = make_fernet(runtime().settings)
        with runtime().sessions() as session:
            job = _load(session, job_id, lock=True)
            if job is None or job.status not in (states.QUEUED, states.SUBMITTING) or job.remote_job_id:
                return "nothing to do"
            # A job still queued was never sent (it is marked submitting, and committed, before any remote call);
            # only one found submitting may exist remotely already and must be looked for there first.
            recovering = job.status == states.SUBMITTING
            if not recovering:
                where = job.service_name or f"service {job.service_id}"
                service.set_status_sync(
                    session=session, job=job, new_status=states.SUBMITTING, message=f"Submitting to {where}."
                )
            # Until the remote call answers, a sweep must not hand the job to another worker.
            job.next_poll_at = now() + timedelta(seconds=runtime().settings.stale_submission_s)
            password = decrypt(fernet, job.result_password_encrypted) if job.result_password_encrypted else None
            view = _view(job, password)
            session.commit()

        async def work(adapter: Adapter, peers: Peers) -> tuple[str, bool]:
            found = await adapter.find(view.id) if recovering else None
            if found is not None:
                return found, False
            return await adapter.submit(view.submission), True

        try:
            remote_id, fresh = asyncio.run(_with_adapter(view, work))
        except RemoteError as exc:
            _note_failure(job_id, exc, action="submit the job")
            return "failed"
        if runtime().settings.pause_after_submit_s:
            time.sleep(runtime().settings.pause_after_submit_s)
        with runtime().sessions() as session:
            job = _load(session, job_id, lock=True)
            assert job is not None
            job.remote_job_id = remote_id
            _succeeded(job)
            cancel_after = job.status == states.CANCELLED
            if job.status == states.SUBMITTING:
                where = job.service_name or f"service {job.service_id}"
                verb = "Submitted to" if fresh else "Found the earlier submission on"
                service.set_status_sync(
                    session=session, job=job, new_status=states.RUNNING, message=f"{verb} {where} as {remote_id}."
                )
                job.next_poll_at = now() + timedelta(seconds=job.poll_interval_s)
            session.commit()
        if cancel_after:
            # The user cancelled while we were submitting: the task retries a remote that is briefly unreachable.
            enqueue_task("jobs.cancel_remote", [job_id])
        return "submitted" if fresh else "adopted"


# --- poll and collect -----------------------------------------------------------------------------------------------


def poll_job(job_id: str) -> str:
    """Ask the remote server where a running job stands and move it on; collect its results when done."""
    with job_lock(job_id) as acquired:
        if not acquired:
            return "busy"
        with runtime().sessions() as session:
            job = _load(session, job_id)
            if job is None:
                return "nothing to do"
            collect = job.status == states.DOWNLOADING
            if not collect and (job.status != states.RUNNING or not job.remote_job_id):
                return "nothing to do"
            view = _view(job, None)
            remote_id = job.remote_job_id or ""
        # Outside the session: a download may take many minutes and must not hold a transaction open meanwhile.
        if collect:
            return _collect_locked(job_id)

        async def work(adapter: Adapter, peers: Peers) -> RemoteStatus:
            return await adapter.status(remote_id)

        try:
            remote = asyncio.run(_with_adapter(view, work))
        except RemoteError as exc:
            _note_failure(job_id, exc, action="check the job")
            return "failed"
        with runtime().sessions() as session:
            job = _load(session, job_id, lock=True)
            if job is None or job.status != states.RUNNING:
                return "nothing to do"
            _succeeded(job)
            job.remote_state = remote.remote_state
            if remote.logs is not None:
                job.logs = remote.logs
            if remote.progress is not None:
                job.progress = remote.progress
            if remote.status == states.RUNNING:
                job.status_message = remote.message
                job.next_poll_at = now() + timedelta(seconds=job.poll_interval_s)
                session.commit()
                return "running"
            service.set_status_sync(session=session, job=job, new_status=remote.status, message=remote.message)
            if remote.status == states.DOWNLOADING:
                job.next_poll_at = now() + timedelta(seconds=runtime().settings.transfer_timeout_s)
            session.commit()
            if remote.status != states.DOWNLOADING:
                return remote.status
        return _collect_locked(job_id)


def collect_job(job_id: str) -> str:
    """Fetch a finished job's result files into the file manager."""
    with job_lock(job_id) as acquired:
        if not acquired:
            return "busy"
        return _collect_locked(job_id)


async def _fetch_to_file(adapter: Adapter, output: Any, path: Path) -> tuple[int, str]:
    digest = hashlib.sha256()
    size = 0
    async with adapter.download(output) as response:
        with path.open("wb") as handle:
            async for chunk in response.aiter_bytes(1 << 16):
                digest.update(chunk)
                size += len(chunk)
                handle.write(chunk)
    return size, digest.hexdigest()


def _collect_locked(job_id: str) -> str:
    with runtime().sessions() as session:
        job = _load(session, job_id)
        if job is None or job.status != states.DOWNLOADING or not job.remote_job_id:
            return "nothing to do"
        view = _view(job, None)
        remote_id = job.remote_job_id
        done = {str(r["name"]) for r in job.result_files}
    settings = runtime().settings

    def record(entry: dict[str, Any]) -> None:
        # Committed file by file: a restarted collection skips what is stored (Michigan counts every download).
        with runtime().sessions() as session:
            job = _load(session, job_id, lock=True)
            assert job is not None
            job.result_files = [*job.result_files, entry]
            job.status_message = (
                f"Fetched {entry['name']} ({entry['size_bytes']} bytes, SHA-256 {entry['sha256'][:12]}…)."
            )
            session.commit()

    async def work(adapter: Adapter, peers: Peers) -> int:
        outputs = await adapter.outputs(remote_id)
        if not outputs:
            raise PermanentRemoteError("the remote server finished the job but lists no result files")
        scratch = settings.var_dir / "job-downloads"
        scratch.mkdir(parents=True, exist_ok=True)
        for output in outputs:
            if output.name in done:
                continue
            with tempfile.TemporaryDirectory(dir=scratch) as directory:
                path = Path(directory) / "result"
                size, sha256 = await _fetch_to_file(adapter, output, path)
                try:
                    stored = await peers.upload_result(
                        path,
                        filename=output.name.replace("/", "_"),
                        job_id=view.id,
                        owner_id=view.user_id,
                        timeout_s=settings.transfer_timeout_s,
                    )
                except AppError as exc:
                    raise TransientRemoteError(f"the file manager did not store {output.name}: {exc.message}") from exc
            if stored.get("sha256") != sha256 or int(stored.get("size_bytes", -1)) != size:
                raise TransientRemoteError(
                    f"{output.name} arrived damaged (we read {size} bytes, SHA-256 {sha256}; the file manager stored "
                    f"{stored.get('size_bytes')} bytes, SHA-256 {stored.get('sha256')})"
                )
            record({"name": output.name, "file_id": str(stored["id"]), "size_bytes": size, "sha256": sha256})
        return len(outputs)

    try:
        count = asyncio.run(_with_adapter(view, work))
    except RemoteError as exc:
        _note_failure(job_id, exc, action="download the results")
        return "failed"
    with runtime().sessions() as session:
        job = _load(session, job_id, lock=True)
        if job is None or job.status != states.DOWNLOADING:
            return "nothing to do"
        _succeeded(job)
        service.set_status_sync(
            session=session,
            job=job,
            new_status=states.COMPLETED,
            message=f"Completed: {count} result files stored with their checksums.",
        )
        session.commit()
    return "completed"


# --- cancel ---------------------------------------------------------------------------------------------------------


def cancel_remote(job_id: str) -> str:
    """Cancel a cancelled job's remote counterpart (found by our tag when its id was never recorded)."""
    with runtime().sessions() as session:
        job = _load(session, job_id)
        if job is None or job.status != states.CANCELLED:
            return "nothing to do"
        view = _view(job, None)

    async def work(adapter: Adapter, peers: Peers) -> str | None:
        remote_id = view.remote_job_id or await adapter.find(view.id)
        if remote_id is not None:
            await adapter.cancel(remote_id)
        return remote_id

    try:
        remote_id = asyncio.run(_with_adapter(view, work))
    except PermanentRemoteError as exc:
        logger.warning("job %s: the remote cancel failed: %s", job_id, exc)
        return "failed"
    with runtime().sessions() as session:
        job = _load(session, job_id, lock=True)
        if job is not None and remote_id is not None:
            job.remote_job_id = remote_id
            job.status_message = f"{job.status_message or 'Cancelled.'} The remote job {remote_id} was cancelled too."
            session.commit()
    return "cancelled"


# --- the sweep beat runs --------------------------------------------------------------------------------------------


def sweep(*, limit: int = 500) -> list[tuple[str, str]]:
    """Due work as (task, job id): scheduled jobs to queue, lost submissions, polls and collections.

    One UPDATE claims the due jobs (pushing their next_poll_at out by a lease), so two beats never hand out the
    same job and the poller costs a few queries however many jobs are live.
    """
    settings = runtime().settings
    at = now()
    stale = at - timedelta(seconds=settings.stale_submission_s)
    work: list[tuple[str, str]] = []
    with runtime().sessions() as session:
        scheduled = session.scalars(
            select(Job)
            .where(Job.status == states.PENDING, Job.run_at.is_not(None), Job.run_at <= at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        ).all()
        for job in scheduled:
            service.set_status_sync(
                session=session, job=job, new_status=states.QUEUED, message="Scheduled time reached."
            )
            work.append(("jobs.submit", str(job.id)))
        due = (
            select(Job.id)
            .where(
                or_(
                    and_(Job.status == states.QUEUED, Job.updated_at <= stale),
                    and_(
                        Job.status.in_((states.SUBMITTING, states.RUNNING, states.DOWNLOADING)),
                        or_(Job.next_poll_at.is_(None), Job.next_poll_at <= at),
                    ),
                )
            )
            .order_by(Job.next_poll_at.nulls_first())
            .limit(limit)
            .with_for_update(skip_locked=True)
            .scalar_subquery()
        )
        lease = at + timedelta(seconds=max(settings.stale_submission_s, 30.0))
        claimed = session.execute(
            update(Job)
            .where(Job.id.in_(due))
            .values(next_poll_at=lease)
            .returning(Job.id, Job.status)
            .execution_options(synchronize_session=False)
        ).all()
        session.commit()
    for job_id, status in claimed:
        task = "jobs.submit" if status in (states.QUEUED, states.SUBMITTING) else "jobs.poll"
        work.append((task, str(job_id)))
    return work
