"""Shared library of the platform's services: settings, database, errors, logging, HTTP, health, metrics."""

__version__ = "0.1.0"
