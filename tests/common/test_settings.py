"""Settings: a prefix per service, platform-wide names as fallback, placeholder secrets refused in production."""

from typing import ClassVar

import pytest
from pydantic import SecretStr, ValidationError
from pydantic_settings import SettingsConfigDict

from microservices.common.settings import ServiceSettings
from microservices.job_processor.config import Settings as JobSettings


class DemoSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="DEMO_")
    service_name: ClassVar[str] = "file_manager"
    api_secret: SecretStr | None = None


def test_database_url_names_the_server_and_each_service_uses_its_own_database(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgresql://u:p%40ss@db.example:5544/postgres")
    monkeypatch.delenv("DEMO_DATABASE_URL", raising=False)
    settings = DemoSettings()
    assert settings.async_database_url() == "postgresql+asyncpg://u:p%40ss@db.example:5544/file_management_db"
    assert settings.sync_database_url() == "postgresql+psycopg2://u:p%40ss@db.example:5544/file_management_db"
    assert settings.database_url is None


def test_prefixed_variable_overrides_the_platform_wide_one(monkeypatch):
    monkeypatch.setenv("REDIS_URL", "redis://shared:6379")
    monkeypatch.setenv("DEMO_REDIS_URL", "redis://own:6380/7")
    monkeypatch.setenv("DEMO_DATABASE_URL", "postgresql://x@h/own_db")
    settings = DemoSettings()
    assert settings.redis_db_url(3) == "redis://own:6380/3"
    assert settings.async_database_url() == "postgresql+asyncpg://x@h/own_db"


def test_port_is_read_only_with_the_prefix(monkeypatch):
    monkeypatch.setenv("PORT", "9999")
    monkeypatch.setenv("JOB_PROCESSOR_PORT", "18003")
    assert JobSettings().port == 18003
    monkeypatch.delenv("JOB_PROCESSOR_PORT")
    assert JobSettings().port == 8003


@pytest.mark.parametrize("secret", ["changeme", "", "secret", "insecure-dev-key", "dev-123"])
def test_placeholder_secret_is_refused_in_production(monkeypatch, secret):
    monkeypatch.setenv("ENVIRONMENT", "production")
    monkeypatch.setenv("DEMO_API_SECRET", secret)
    with pytest.raises(ValidationError, match="DEMO_API_SECRET is a placeholder"):
        DemoSettings()


def test_placeholder_secret_is_accepted_in_development_and_real_one_in_production(monkeypatch):
    monkeypatch.setenv("ENVIRONMENT", "development")
    monkeypatch.setenv("DEMO_API_SECRET", "changeme")
    assert DemoSettings().api_secret.get_secret_value() == "changeme"
    monkeypatch.setenv("ENVIRONMENT", "production")
    monkeypatch.setenv("DEMO_API_SECRET", "k3y-9f8a7b6c5d4e3f2a1b0c")
    assert DemoSettings().api_secret.get_secret_value() == "k3y-9f8a7b6c5d4e3f2a1b0c"


def test_unknown_environment_is_refused(monkeypatch):
    monkeypatch.setenv("ENVIRONMENT", "prod")
    with pytest.raises(ValidationError):
        DemoSettings()
