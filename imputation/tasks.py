"""Celery tasks of the `imputation` app (found by `app.autodiscover_tasks()`); the registry sync lands here."""
