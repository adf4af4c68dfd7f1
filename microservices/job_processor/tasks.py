"""Celery tasks of the job processor: thin, idempotent, enqueued after the database commit.

The work is in `processing`; a task only names it. Beat runs `jobs.sweep`, which hands out due work.
"""

from __future__ import annotations

from microservices.job_processor import processing
from microservices.job_processor.worker import app


@app.task(name="jobs.ping")
def ping() -> str:
    """Answer 'pong': lets operators and tests see a worker consume the jobs queue end to end."""
    return "pong"


@app.task(name="jobs.submit")
def submit(job_id: str) -> str:
    """Submit a queued job to its remote service (at most once, whatever happens to the worker)."""
    return processing.submit_job(job_id)


@app.task(name="jobs.poll")
def poll(job_id: str) -> str:
    """Poll a running job; collect its results when it has finished."""
    return processing.poll_job(job_id)


@app.task(name="jobs.collect")
def collect(job_id: str) -> str:
    """Fetch a finished job's results into the file manager."""
    return processing.collect_job(job_id)


@app.task(
    name="jobs.cancel_remote", autoretry_for=(processing.TransientRemoteError,), retry_backoff=True, max_retries=8
)
def cancel_remote(job_id: str) -> str:
    """Cancel a cancelled job on its remote server too."""
    return processing.cancel_remote(job_id)


@app.task(name="jobs.sweep")
def sweep() -> int:
    """Hand out due work: scheduled jobs, lost submissions, polls and collections."""
    work = processing.sweep()
    for task, job_id in work:
        app.send_task(task, args=[job_id])
    return len(work)
