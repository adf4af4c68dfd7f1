"""The admin API under /api/admin/ (admins only): services and reference panels; saves reach the registry."""

from __future__ import annotations

from rest_framework import viewsets

from imputation.models import ImputationService, ReferencePanel
from imputation.serializers import ImputationServiceSerializer, ReferencePanelSerializer


class ImputationServiceViewSet(viewsets.ModelViewSet):
    """Imputation services; every change is pushed to the service registry by the model signals."""

    queryset = ImputationService.objects.prefetch_related("reference_panels").order_by("name")
    serializer_class = ImputationServiceSerializer


class ReferencePanelViewSet(viewsets.ModelViewSet):
    """Reference panels; a change pushes its service again."""

    queryset = ReferencePanel.objects.select_related("service").order_by("service__name", "name")
    serializer_class = ReferencePanelSerializer
