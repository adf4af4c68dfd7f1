"""DRF serializers of the admin API: services and their reference panels."""

from __future__ import annotations

from rest_framework import serializers

from imputation.models import ImputationService, ReferencePanel


class ReferencePanelSerializer(serializers.ModelSerializer):
    class Meta:
        model = ReferencePanel
        fields = [
            "id",
            "service",
            "panel_id",
            "name",
            "build",
            "populations",
            "samples_count",
            "variants_count",
            "is_active",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["id", "created_at", "updated_at"]

    def validate_populations(self, value: object) -> list[str]:
        """A list of non-empty names."""
        if not isinstance(value, list) or not all(isinstance(p, str) and p.strip() for p in value):
            raise serializers.ValidationError("Give a list of population names.")
        return value


class ImputationServiceSerializer(serializers.ModelSerializer):
    reference_panels = ReferencePanelSerializer(many=True, read_only=True)

    class Meta:
        model = ImputationService
        fields = [
            "id",
            "name",
            "slug",
            "api_type",
            "base_url",
            "description",
            "location",
            "country_code",
            "contact_email",
            "is_active",
            "registry_id",
            "reference_panels",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["id", "registry_id", "reference_panels", "created_at", "updated_at"]
