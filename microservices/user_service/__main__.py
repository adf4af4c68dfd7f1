"""`python -m microservices.user_service` serves the user service."""

from microservices.common.app import serve
from microservices.user_service.config import Settings
from microservices.user_service.main import build_app

settings = Settings()
serve(build_app(settings), settings)
