"""The platform's FastAPI services and their shared library."""
