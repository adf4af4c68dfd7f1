"""`python -m microservices.file_manager` serves the file manager."""

from microservices.common.app import serve
from microservices.file_manager.config import Settings
from microservices.file_manager.main import build_app

settings = Settings()
serve(build_app(settings), settings)
