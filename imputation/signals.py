"""Signals that push every change of a service or its panels to the service registry after the commit."""

from __future__ import annotations

from typing import Any

from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from imputation.models import ImputationService, ReferencePanel
from imputation.services.registry_sync import schedule_push


@receiver(post_save, sender=ImputationService, dispatch_uid="registry_push_service_saved")
@receiver(post_delete, sender=ImputationService, dispatch_uid="registry_push_service_deleted")
def service_changed(sender: type[ImputationService], instance: ImputationService, **kwargs: Any) -> None:
    """A service was saved or deleted: the registry gets its new state (or its removal)."""
    schedule_push(instance.pk)


@receiver(post_save, sender=ReferencePanel, dispatch_uid="registry_push_panel_saved")
@receiver(post_delete, sender=ReferencePanel, dispatch_uid="registry_push_panel_deleted")
def panel_changed(sender: type[ReferencePanel], instance: ReferencePanel, **kwargs: Any) -> None:
    """A panel was saved or deleted: its service is pushed again, with its panels."""
    schedule_push(instance.service_id)
