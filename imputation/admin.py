"""Admin pages for imputation services and reference panels."""

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, JsonResponse
from django.urls import URLPattern, path

from imputation.models import ImputationService, ReferencePanel
from imputation.services.cache_service import service_health
from imputation.services.registry_client import RegistryClient, RegistryError, RegistryRejected
from imputation.services.registry_sync import applying_registry_change, mirror_panels, push_service


class ReferencePanelInline(admin.TabularInline):
    model = ReferencePanel
    extra = 0
    fields = ["panel_id", "name", "build", "populations", "samples_count", "variants_count", "is_active"]


@admin.register(ImputationService)
class ImputationServiceAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "slug",
        "api_type",
        "base_url",
        "country_code",
        "is_active",
        "health",
        "last_checked",
        "registry_id",
        "updated_at",
    ]
    list_filter = ["api_type", "is_active", "country_code"]
    search_fields = ["name", "slug", "base_url", "location", "description"]
    prepopulated_fields = {"slug": ["name"]}
    readonly_fields = ["registry_id", "created_at", "updated_at"]
    inlines = [ReferencePanelInline]
    actions = ["sync_to_registry", "sync_panels_from_service", "refresh_health"]

    def get_urls(self) -> list[URLPattern]:
        custom = [
            path(
                "test-connection/",
                self.admin_site.admin_view(self.test_connection_view),
                name="imputation_imputationservice_test_connection",
            )
        ]
        return custom + super().get_urls()

    def test_connection_view(self, request: HttpRequest) -> JsonResponse:
        """The wizard's "Test connection": the registry probes the URL (Django never probes a service itself)."""
        if request.method != "POST" or not self.has_add_permission(request):
            return JsonResponse({"ok": False, "message": "Not allowed."}, status=403)
        api_type, base_url = request.POST.get("api_type", ""), request.POST.get("base_url", "")
        try:
            with RegistryClient() as registry:
                result = registry.test_connection(api_type=api_type, base_url=base_url)
        except RegistryRejected as exc:
            return JsonResponse({"ok": False, "message": str(exc)}, status=400)
        except RegistryError as exc:
            return JsonResponse({"ok": False, "message": str(exc)}, status=502)
        if result["status"] == "healthy":
            message = f"Reachable: answered in {result['response_time_ms']:.0f} ms."
        else:
            message = f"Not reachable: {result['error_message']}."
        return JsonResponse({"ok": result["status"] == "healthy", "message": message, "result": result})

    @admin.display(description="Health")
    def health(self, obj: ImputationService) -> str:
        """The registry's latest health (cached: 15 min healthy, 1 min unhealthy)."""
        state = service_health(obj.registry_id)
        if state is None:
            return "not in registry" if obj.registry_id is None else "unknown"
        if state.get("error_message"):
            return f"{state['status']}: {state['error_message']}"
        return str(state["status"])

    @admin.display(description="Last checked")
    def last_checked(self, obj: ImputationService) -> str:
        state = service_health(obj.registry_id)
        return str(state.get("checked_at") or "never") if state else "-"

    @admin.action(description="Sync to registry")
    def sync_to_registry(self, request: HttpRequest, queryset: QuerySet[ImputationService]) -> None:
        """Push the selected services to the registry now."""
        done, failed = [], []
        for service in queryset:
            try:
                push_service(service.pk)
                done.append(service.name)
            except RegistryError as exc:
                failed.append(f"{service.name} ({exc})")
        if done:
            self.message_user(request, f"Synchronised to the registry: {', '.join(done)}.", messages.SUCCESS)
        if failed:
            self.message_user(request, f"Not synchronised: {'; '.join(failed)}.", messages.ERROR)

    @admin.action(description="Sync panels from service")
    def sync_panels_from_service(self, request: HttpRequest, queryset: QuerySet[ImputationService]) -> None:
        """Ask the registry to read each selected service's panels from the service itself, then copy them here."""
        for service in queryset:
            try:
                if service.registry_id is None:
                    push_service(service.pk)
                    service.refresh_from_db()
                assert service.registry_id is not None
                with RegistryClient() as registry:
                    result = registry.sync_panels(service.registry_id)
                    with applying_registry_change():
                        mirror_panels(service, registry.list_panels(service.registry_id))
            except RegistryError as exc:
                self.message_user(request, f"{service.name}: {exc}", messages.ERROR)
                continue
            self.message_user(
                request,
                f"{service.name}: {len(result['added'])} panels added, {len(result['updated'])} updated, "
                f"{len(result['deactivated'])} deactivated.",
                messages.SUCCESS,
            )

    @admin.action(description="Check health now")
    def refresh_health(self, request: HttpRequest, queryset: QuerySet[ImputationService]) -> None:
        """Have the registry check the selected services now (the answer is cached for 10 s)."""
        for service in queryset:
            state = service_health(service.registry_id, refresh=True)
            status = state["status"] if state else "unknown (not in the registry)"
            self.message_user(request, f"{service.name}: {status}.")


@admin.register(ReferencePanel)
class ReferencePanelAdmin(admin.ModelAdmin):
    list_display = ["name", "panel_id", "service", "build", "samples_count", "variants_count", "is_active"]
    list_filter = ["build", "is_active", "service"]
    search_fields = ["name", "panel_id", "service__name"]
    list_select_related = ["service"]
    autocomplete_fields = ["service"]
    readonly_fields = ["created_at", "updated_at"]
