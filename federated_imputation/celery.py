"""The Celery app of the Django project (`celery -A federated_imputation worker --pool threads`)."""

import os

from celery import Celery
from celery.signals import worker_ready, worker_shutdown

from federated_imputation.env import redis_server_url, redis_url_with_db
from microservices.common.heartbeat import install_celery_heartbeat

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "federated_imputation.settings")

app = Celery("federated_imputation")
# Broker, result backend and queue come from the CELERY_* settings; read lazily, when first needed.
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# Heartbeats live in Redis database 0, where monitoring looks for every component's workers.
install_celery_heartbeat(app, component="django", redis_url=redis_url_with_db(redis_server_url(), 0))


@worker_ready.connect
def _start_registry_events(**kwargs: object) -> None:
    # The worker applies the registry's service.changed events to the Django models, in a thread of its own.
    from imputation.services.registry_events import start_consumer

    start_consumer()


@worker_shutdown.connect
def _stop_registry_events(**kwargs: object) -> None:
    from imputation.services.registry_events import stop_consumer

    stop_consumer()
