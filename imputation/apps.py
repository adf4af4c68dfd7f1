"""App configuration of `imputation`."""

from django.apps import AppConfig


class ImputationConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "imputation"
    verbose_name = "Imputation services"

    def ready(self) -> None:
        # Connects the receivers that push changes to the service registry.
        from imputation import signals  # noqa: F401
