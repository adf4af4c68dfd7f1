"""`python -m microservices.gateway` serves the api gateway."""

from microservices.common.app import serve
from microservices.gateway.config import Settings
from microservices.gateway.main import build_app

settings = Settings()
# Several workers need the app as an import string (each process builds its own); one needs no second import.
serve("microservices.gateway.main:app" if settings.workers > 1 else build_app(settings), settings)
