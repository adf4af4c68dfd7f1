"""Keeping the Django admin's services and the service registry in step, both ways, without echoes.

Django → registry: every saved or deleted service (or panel) is pushed after the commit as an idempotent upsert
keyed by the Django id; when the registry is away the push becomes a Celery task retried with backoff.
Registry → Django: `service.changed` events from the registry are applied here, except those whose origin is
Django itself; saves made while applying are marked so that the signals do not push them back.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction

from imputation.models import ImputationService, ReferencePanel
from imputation.services.registry_client import RegistryClient, RegistryRejected, RegistryUnavailable

logger = logging.getLogger(__name__)

# The registry marks each service.changed event with who made the change.
ORIGIN_DJANGO = "django"

_local = threading.local()


@contextlib.contextmanager
def applying_registry_change() -> Iterator[None]:
    """Saves inside this block come from the registry: the signals must not push them back."""
    previous = getattr(_local, "applying", False)
    _local.applying = True
    try:
        yield
    finally:
        _local.applying = previous


def is_applying_registry_change() -> bool:
    """True inside `applying_registry_change()`."""
    return bool(getattr(_local, "applying", False))


def service_payload(service: ImputationService) -> dict[str, Any]:
    """The registry's upsert body for a Django service and its panels (only what Django holds)."""
    return {
        "name": service.name,
        "slug": service.slug or None,
        "api_type": service.api_type,
        "base_url": service.base_url,
        "description": service.description,
        "location": service.location,
        "country_code": service.country_code or None,
        "contact_email": service.contact_email or None,
        "is_active": service.is_active,
        "panels": [
            {
                "panel_id": panel.panel_id,
                "name": panel.name,
                "build": panel.build,
                "populations": list(panel.populations or []),
                "samples_count": panel.samples_count,
                "variants_count": panel.variants_count,
                "is_active": panel.is_active,
            }
            for panel in service.reference_panels.all()
        ],
    }


def push_service(django_id: int, *, client: RegistryClient | None = None) -> str:
    """Send the current state of one Django service to the registry: "created", "updated" or "deleted"."""
    service = ImputationService.objects.filter(pk=django_id).first()
    with contextlib.ExitStack() as stack:
        registry = client or stack.enter_context(RegistryClient())
        if service is None:
            registry.delete_django_service(django_id)
            return "deleted"
        body, created = registry.upsert_django_service(django_id, service_payload(service))
    if service.registry_id != body["id"]:
        # update() sends no post_save, so linking the two ids pushes nothing.
        ImputationService.objects.filter(pk=django_id).update(registry_id=body["id"])
    return "created" if created else "updated"


def push_or_queue(django_id: int) -> None:
    """Push now; when the registry is away, leave it to a Celery task retried with backoff."""
    from imputation.tasks import push_service_to_registry

    try:
        outcome = push_service(django_id)
        logger.info("service %s pushed to the registry: %s", django_id, outcome)
    except RegistryUnavailable as exc:
        logger.warning("service %s not pushed (%s); queued for retry", django_id, exc)
        try:
            push_service_to_registry.apply_async(args=(django_id,), countdown=2)
        except Exception:
            logger.exception("service %s could not be queued; `manage.py sync_registry` will reconcile", django_id)
    except RegistryRejected as exc:
        logger.error("the registry refused service %s: %s", django_id, exc)


def _pending() -> set[int]:
    pending: set[int] | None = getattr(_local, "pending", None)
    if pending is None:
        pending = _local.pending = set()
    return pending


def schedule_push(django_id: int) -> None:
    """Push a service once the current transaction commits (once, however many rows of it changed)."""
    if is_applying_registry_change():
        return
    pending = _pending()
    if django_id in pending:
        return
    pending.add(django_id)

    def push() -> None:
        pending.discard(django_id)
        push_or_queue(django_id)

    transaction.on_commit(push)


def apply_service_changed(payload: dict[str, Any], *, client: RegistryClient | None = None) -> str:
    """Apply one `service.changed` event from the registry; returns what was done."""
    if payload.get("origin") == ORIGIN_DJANGO:
        return "skipped"
    registry_id = int(payload["service_id"])
    data = payload.get("service") or {}
    with applying_registry_change(), transaction.atomic():
        if payload.get("action") == "deleted":
            deleted, _ = ImputationService.objects.filter(registry_id=registry_id).delete()
            return "deleted" if deleted else "absent"
        service = _match(registry_id, data)
        fields = {
            "name": data["name"],
            "slug": data["slug"],
            "api_type": data["api_type"],
            "base_url": data["base_url"],
            "description": data.get("description") or "",
            "location": data.get("location") or "",
            "country_code": data.get("country_code") or "",
            "contact_email": data.get("contact_email") or "",
            "is_active": bool(data.get("is_active", True)),
            "registry_id": registry_id,
        }
        created = service is None
        if service is None:
            service = ImputationService(**fields)
            service.save()
        elif any(getattr(service, name) != value for name, value in fields.items()):
            for name, value in fields.items():
                setattr(service, name, value)
            service.save()
        with contextlib.ExitStack() as stack:
            registry = client or stack.enter_context(RegistryClient())
            mirror_panels(service, registry.list_panels(registry_id))
    return "created" if created else "updated"


def _match(registry_id: int, data: dict[str, Any]) -> ImputationService | None:
    service = ImputationService.objects.filter(registry_id=registry_id).first()
    if service is None and data.get("django_id"):
        service = ImputationService.objects.filter(pk=data["django_id"]).first()
    if service is None:
        service = ImputationService.objects.filter(name=data["name"], registry_id__isnull=True).first()
    return service


def mirror_panels(service: ImputationService, panels: list[dict[str, Any]]) -> None:
    """Add or update the registry's panels here; a panel the registry no longer lists is left alone."""
    for panel in panels:
        ReferencePanel.objects.update_or_create(
            service=service,
            panel_id=panel["panel_id"],
            defaults={
                "name": panel["name"],
                "build": panel["build"],
                "populations": panel["populations"],
                "samples_count": panel.get("samples_count") or 0,
                "variants_count": panel.get("variants_count"),
                "is_active": panel["is_active"],
            },
        )


@dataclass
class ReconcileReport:
    """What `sync_registry` changed."""

    pushed_created: list[str] = field(default_factory=list)
    pushed_updated: list[str] = field(default_factory=list)
    pulled_created: list[str] = field(default_factory=list)
    pulled_updated: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        """One line per kind of change, for the command's output."""

        def named(label: str, names: list[str]) -> str:
            return f"{label}: {len(names)}" + (f" ({', '.join(names)})" if names else "")

        return [
            named("created in the registry", self.pushed_created),
            named("updated in the registry", self.pushed_updated),
            named("created in Django", self.pulled_created),
            named("updated in Django", self.pulled_updated),
            named("refused by the registry", self.refused),
        ]


def reconcile(*, client: RegistryClient | None = None, push_unchanged: bool = True) -> ReconcileReport:
    """Push every Django service to the registry, then copy the registry's other services into Django."""
    report = ReconcileReport()
    with contextlib.ExitStack() as stack:
        registry = client or stack.enter_context(RegistryClient())
        before = {s["id"]: s for s in registry.list_services()}
        for service in ImputationService.objects.all():
            try:
                body, created = registry.upsert_django_service(service.pk, service_payload(service))
            except RegistryRejected as exc:
                report.refused.append(f"{service.name}: {exc}")
                continue
            if service.registry_id != body["id"]:
                ImputationService.objects.filter(pk=service.pk).update(registry_id=body["id"])
            old = before.get(body["id"])
            if created:
                report.pushed_created.append(service.name)
            elif old is not None and _differs(old, body):
                report.pushed_updated.append(service.name)
        known = set(ImputationService.objects.exclude(registry_id=None).values_list("registry_id", flat=True))
        for remote in registry.list_services():
            if remote["id"] in known:
                continue
            event = {"service_id": remote["id"], "action": "updated", "origin": "registry", "service": remote}
            outcome = apply_service_changed(event, client=registry)
            (report.pulled_created if outcome == "created" else report.pulled_updated).append(remote["name"])
    return report


def _differs(old: dict[str, Any], new: dict[str, Any]) -> bool:
    ignored = {"updated_at", "health_status", "response_time_ms", "last_checked_at", "is_available", "django_id"}
    return any(old.get(k) != new.get(k) for k in new if k not in ignored)
