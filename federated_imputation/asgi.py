"""ASGI entry point, served by uvicorn (`python -m federated_imputation`)."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "federated_imputation.settings")

application = get_asgi_application()
