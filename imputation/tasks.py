"""Celery tasks of the `imputation` app (found by `app.autodiscover_tasks()`): pushes to the service registry."""

from __future__ import annotations

import logging

from celery import shared_task
from django.conf import settings

from imputation.services.registry_client import RegistryRejected, RegistryUnavailable
from imputation.services.registry_sync import push_service

logger = logging.getLogger(__name__)


@shared_task(
    name="imputation.push_service_to_registry",
    autoretry_for=(RegistryUnavailable,),
    retry_backoff=2,
    retry_backoff_max=settings.REGISTRY_PUSH_RETRY_BACKOFF_MAX_S,
    retry_jitter=False,
    max_retries=settings.REGISTRY_PUSH_MAX_RETRIES,
)
def push_service_to_registry(django_id: int) -> str:
    """Push one service's current state (idempotent); retried with exponential backoff while the registry is away."""
    try:
        return push_service(django_id)
    except RegistryRejected as exc:
        logger.error("the registry refused service %s: %s", django_id, exc)
        return "refused"
