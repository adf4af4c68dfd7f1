"""`python -m microservices.monitoring` serves the monitoring service."""

from microservices.common.app import serve
from microservices.monitoring.config import Settings
from microservices.monitoring.main import build_app

settings = Settings()
serve(build_app(settings), settings)
