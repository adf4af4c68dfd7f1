"""`manage.py sync_registry`: reconcile the Django admin's services with the service registry, both ways."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from imputation.services.registry_client import RegistryUnavailable
from imputation.services.registry_sync import reconcile


class Command(BaseCommand):
    help = "Push every service to the service registry and copy the registry's other services here."

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            report = reconcile()
        except RegistryUnavailable as exc:
            raise CommandError(str(exc)) from exc
        for line in report.lines():
            self.stdout.write(line)
        if report.refused:
            raise CommandError("Some services were refused by the registry; see above.")
