"""Imputation services and their reference panels, as admins edit them in the Django admin.

The service registry holds the live copy; `registry_id` links a row to it.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import models


class ApiType(models.TextChoices):
    MICHIGAN = "michigan", "Michigan Imputation Server"
    GA4GH_WES = "ga4gh_wes", "GA4GH WES"
    DNASTACK = "dnastack", "DNAstack"


class GenomeBuild(models.TextChoices):
    HG19 = "hg19", "GRCh37 / hg19"
    HG38 = "hg38", "GRCh38 / hg38"


class ImputationService(models.Model):
    """An external imputation service that jobs can be sent to."""

    name = models.CharField(max_length=200, unique=True)
    slug = models.SlugField(max_length=100, unique=True)
    api_type = models.CharField(max_length=20, choices=ApiType.choices)
    base_url = models.URLField(max_length=500)
    description = models.TextField(blank=True)
    location = models.CharField(max_length=200, blank=True, help_text="Institution and city, for people.")
    country_code = models.CharField(
        max_length=2,
        blank=True,
        validators=[RegexValidator(r"^[A-Z]{2}$", "Use the two capital letters of ISO 3166-1.")],
    )
    contact_email = models.EmailField(blank=True)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    registry_id = models.PositiveIntegerField(
        null=True,
        blank=True,
        unique=True,
        help_text="Id of the same service in the service registry, set when it is first synchronised.",
    )

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class ReferencePanel(models.Model):
    """A reference panel that one service imputes against."""

    service = models.ForeignKey(ImputationService, on_delete=models.CASCADE, related_name="reference_panels")
    panel_id = models.CharField(max_length=200, help_text="The panel's id on the service itself.")
    name = models.CharField(max_length=200)
    build = models.CharField(max_length=4, choices=GenomeBuild.choices)
    populations = models.JSONField(default=list, blank=True, help_text='A list of names, e.g. ["AFR", "EUR"].')
    samples_count = models.PositiveIntegerField(default=0)
    variants_count = models.PositiveBigIntegerField(null=True, blank=True)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["service__name", "name"]
        constraints = [
            models.UniqueConstraint(fields=["service", "panel_id"], name="reference_panel_service_panel_id_uniq"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.panel_id})"

    def clean(self) -> None:
        """Refuse populations that are not a list of names."""
        super().clean()
        if not isinstance(self.populations, list) or not all(
            isinstance(population, str) and population.strip() for population in self.populations
        ):
            raise ValidationError({"populations": "Give a list of population names."})
