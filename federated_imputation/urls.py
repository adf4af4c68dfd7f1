"""URL routes of the Django admin project."""

from django.contrib import admin
from django.urls import include, path
from rest_framework.routers import DefaultRouter

from federated_imputation.health import health
from imputation.views import ImputationServiceViewSet, ReferencePanelViewSet

# The admin API's viewsets register here as they are written.
admin_api = DefaultRouter()
admin_api.register("services", ImputationServiceViewSet)
admin_api.register("reference-panels", ReferencePanelViewSet)

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/admin/", include(admin_api.urls)),
    path("health", health, name="health"),
    path("health/", health),
]
