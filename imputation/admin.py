"""Admin pages for imputation services and reference panels."""

from django.contrib import admin

from imputation.models import ImputationService, ReferencePanel


class ReferencePanelInline(admin.TabularInline):
    model = ReferencePanel
    extra = 0
    fields = ["panel_id", "name", "build", "populations", "samples_count", "variants_count", "is_active"]


@admin.register(ImputationService)
class ImputationServiceAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "api_type", "base_url", "country_code", "is_active", "registry_id", "updated_at"]
    list_filter = ["api_type", "is_active", "country_code"]
    search_fields = ["name", "slug", "base_url", "location", "description"]
    prepopulated_fields = {"slug": ["name"]}
    readonly_fields = ["registry_id", "created_at", "updated_at"]
    inlines = [ReferencePanelInline]


@admin.register(ReferencePanel)
class ReferencePanelAdmin(admin.ModelAdmin):
    list_display = ["name", "panel_id", "service", "build", "samples_count", "variants_count", "is_active"]
    list_filter = ["build", "is_active", "service"]
    search_fields = ["name", "panel_id", "service__name"]
    list_select_related = ["service"]
    autocomplete_fields = ["service"]
    readonly_fields = ["created_at", "updated_at"]
