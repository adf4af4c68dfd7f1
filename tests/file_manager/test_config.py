"""File manager settings: the signing key must be real outside development, storage follows VAR_DIR."""

from pathlib import Path

import pytest
from pydantic import ValidationError

from microservices.file_manager.config import Settings


def test_the_placeholder_signing_key_is_refused_in_production():
    with pytest.raises(ValidationError) as error:
        Settings(environment="production")
    assert "FILE_MANAGER_SIGNING_KEY is a placeholder; set a real secret in production" in str(error.value)
    assert Settings(environment="production", signing_key="k" * 40).signing_key.get_secret_value() == "k" * 40


def test_settings_from_the_environment(monkeypatch):
    monkeypatch.setenv("FILE_MANAGER_MAX_UPLOAD_MB", "12.5")
    monkeypatch.setenv("FILE_MANAGER_USER_QUOTA_MB", "100")
    monkeypatch.setenv("FILE_MANAGER_STORAGE_DIR", "/srv/files")
    monkeypatch.setenv("FILE_MANAGER_URL", "http://files.internal:8004/")
    settings = Settings()
    assert (settings.max_upload_bytes, settings.user_quota_bytes) == (13_107_200, 104_857_600)
    assert settings.storage_dir == Path("/srv/files")
    assert settings.resolved_public_url == "http://files.internal:8004"
