"""`python -m microservices.user_service` serves the user service."""

from pydantic import ValidationError

from microservices.common.app import serve
from microservices.user_service.config import Settings
from microservices.user_service.main import build_app
from microservices.user_service.security import KeyConfigurationError

try:
    settings = Settings()
except ValidationError as exc:
    # A setting refused at startup is a configuration mistake too: its message, without the traceback.
    messages = "; ".join(str(error["msg"]).removeprefix("Value error, ") for error in exc.errors())
    raise SystemExit(f"user service: {messages}") from None
try:
    app = build_app(settings)
except KeyConfigurationError as exc:
    # A missing or unreadable key is a configuration mistake: one clear line, no traceback.
    raise SystemExit(f"user service: {exc}") from None
serve(app, settings)
