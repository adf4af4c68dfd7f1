"""`python -m microservices.gateway` serves the api gateway."""

from microservices.common.app import serve
from microservices.gateway.config import Settings
from microservices.gateway.main import build_app

settings = Settings()
serve(build_app(settings), settings)
