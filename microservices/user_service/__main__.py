"""`python -m microservices.user_service` serves the user service."""

from microservices.common.app import serve
from microservices.user_service.config import Settings
from microservices.user_service.main import build_app
from microservices.user_service.security import KeyConfigurationError

settings = Settings()
try:
    app = build_app(settings)
except KeyConfigurationError as exc:
    # A missing or unreadable key is a configuration mistake: one clear line, no traceback.
    raise SystemExit(f"user service: {exc}") from None
serve(app, settings)
