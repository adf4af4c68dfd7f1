"""`python -m microservices.notification` serves the notification service."""

from microservices.common.app import serve
from microservices.notification.config import Settings
from microservices.notification.main import build_app

settings = Settings()
serve(build_app(settings), settings)
