"""Django project of the admin UI: settings, URLs, the Celery app, WSGI and ASGI entry points."""

from federated_imputation.celery import app as celery_app

__all__ = ["celery_app"]
