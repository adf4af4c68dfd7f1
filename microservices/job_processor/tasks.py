"""Celery tasks of the job processor: thin, idempotent, enqueued after the database commit."""

from microservices.job_processor.worker import app


@app.task(name="jobs.ping")
def ping() -> str:
    """Answer 'pong': lets operators and tests see a worker consume the jobs queue end to end."""
    return "pong"
