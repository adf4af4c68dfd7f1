"""`python -m microservices.job_processor` serves the job processor."""

from microservices.common.app import serve
from microservices.job_processor.config import Settings
from microservices.job_processor.main import build_app

settings = Settings()
serve(build_app(settings), settings)
