"""The job processor's Celery app: `celery -A microservices.job_processor.worker worker|beat`."""

import logging

from celery import Celery

from microservices.common.heartbeat import install_celery_heartbeat
from microservices.common.redis import CACHE_DB, CELERY_DB
from microservices.job_processor.config import Settings

settings = Settings()

# httpx logs every URL at INFO; Michigan result links carry their secret (the download hash) in the path.
logging.getLogger("httpx").setLevel(logging.WARNING)

app = Celery("job_processor", broker=settings.redis_db_url(CELERY_DB), backend=settings.redis_db_url(CELERY_DB))
app.conf.update(
    task_default_queue="jobs",
    task_acks_late=True,  # a task whose worker dies is delivered again; tasks are idempotent
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    task_serializer="json",
    accept_content=["json"],
    result_expires=3600,
    broker_connection_retry_on_startup=True,
    timezone="UTC",
    # Redelivery of a task whose worker died (acks_late); tasks are idempotent, so a short timeout is safe.
    broker_transport_options={"visibility_timeout": settings.task_visibility_timeout_s},
    beat_schedule={"jobs.sweep": {"task": "jobs.sweep", "schedule": settings.poll_tick_s, "options": {"expires": 30}}},
)
app.autodiscover_tasks(["microservices.job_processor"], related_name="tasks", force=True)
install_celery_heartbeat(app, component="jobs", redis_url=settings.redis_db_url(CACHE_DB))
