"""`python -m microservices.service_registry` serves the service registry."""

from microservices.common.app import serve
from microservices.service_registry.config import Settings
from microservices.service_registry.main import build_app

settings = Settings()
serve(build_app(settings), settings)
