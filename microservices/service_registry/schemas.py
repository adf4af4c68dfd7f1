"""Request and response bodies of the service registry."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, SecretStr, model_validator

ApiType = Literal["michigan", "ga4gh_wes", "dnastack"]
AuthMode = Literal["none", "api_token", "bearer"]
HealthStatus = Literal["unknown", "healthy", "unhealthy"]
Build = Literal["hg19", "hg38"]
ChangeAction = Literal["created", "updated", "deleted"]

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def normalise_base_url(value: str) -> str:
    """An http(s) URL with a host, lower-case scheme and host, no query, fragment or trailing slash."""
    parts = urlsplit(value.strip())
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise ValueError("the base URL must start with http:// or https://")
    if not parts.hostname:
        raise ValueError("the base URL must name a host")
    if parts.query or parts.fragment:
        raise ValueError("the base URL must not carry a query or a fragment")
    netloc = parts.hostname.lower()
    if parts.port is not None:
        netloc = f"{netloc}:{parts.port}"
    if parts.username:
        raise ValueError("the base URL must not carry credentials; use the credential field")
    return urlunsplit((scheme, netloc, parts.path.rstrip("/"), "", ""))


def _email(value: str | None) -> str | None:
    if value is None or value == "":
        return None
    if not _EMAIL.match(value):
        raise ValueError("not an e-mail address")
    return value.lower()


def _tags(value: list[str]) -> list[str]:
    cleaned = [t.strip().lower() for t in value if t.strip()]
    return list(dict.fromkeys(cleaned))


BaseUrl = Annotated[str, Field(max_length=500), AfterValidator(normalise_base_url)]
CountryCode = Annotated[str, Field(pattern=r"^[A-Z]{2}$", description="ISO 3166-1 alpha-2, e.g. ZA")]
Email = Annotated[str | None, AfterValidator(_email)]
Tags = Annotated[list[Annotated[str, Field(max_length=50)]], Field(max_length=30), AfterValidator(_tags)]


class _ServiceFields(BaseModel):
    model_config = ConfigDict(extra="forbid")

    description: str = Field(default="", max_length=5000)
    location: str = Field(default="", max_length=200)
    country_code: CountryCode | None = None
    contact_email: Email = None
    auth_mode: AuthMode = "none"
    is_active: bool = True
    supported_builds: list[Build] = Field(default_factory=lambda: list[Build](["hg19", "hg38"]))
    max_upload_size_mb: int | None = Field(default=None, ge=1)
    min_samples: int | None = Field(default=None, ge=1)
    max_samples: int | None = Field(default=None, ge=1)
    poll_interval_s: int = Field(default=60, ge=10, le=86400, description="Least seconds between two polls")
    tags: Tags = Field(default_factory=list)


class ServiceCreate(_ServiceFields):
    """A new service; `credential` (an API token) is stored encrypted and never returned."""

    name: str = Field(min_length=1, max_length=200)
    slug: str | None = Field(default=None, pattern=r"^[a-z0-9]+(?:-[a-z0-9]+)*$", max_length=100)
    api_type: ApiType
    base_url: BaseUrl
    credential: SecretStr | None = None

    @model_validator(mode="after")
    def _samples_in_order(self) -> ServiceCreate:
        if self.min_samples and self.max_samples and self.min_samples > self.max_samples:
            raise ValueError("min_samples is larger than max_samples")
        return self


class ServiceUpdate(BaseModel):
    """A partial change to a service; `credential: null` removes the stored credential."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=200)
    slug: str | None = Field(default=None, pattern=r"^[a-z0-9]+(?:-[a-z0-9]+)*$", max_length=100)
    api_type: ApiType | None = None
    base_url: BaseUrl | None = None
    credential: SecretStr | None = None
    description: str | None = Field(default=None, max_length=5000)
    location: str | None = Field(default=None, max_length=200)
    country_code: CountryCode | None = None
    contact_email: Email = None
    auth_mode: AuthMode | None = None
    is_active: bool | None = None
    supported_builds: list[Build] | None = None
    max_upload_size_mb: int | None = Field(default=None, ge=1)
    min_samples: int | None = Field(default=None, ge=1)
    max_samples: int | None = Field(default=None, ge=1)
    poll_interval_s: int | None = Field(default=None, ge=10, le=86400)
    tags: Tags | None = None


class ServiceRead(BaseModel):
    """A service as every caller sees it (the credential only as `has_credential`)."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    slug: str
    api_type: ApiType
    base_url: str
    description: str
    location: str
    country_code: str | None
    contact_email: str | None
    auth_mode: AuthMode
    has_credential: bool
    is_active: bool
    is_available: bool
    health_status: HealthStatus
    response_time_ms: float | None
    last_checked_at: datetime | None
    supported_builds: list[str]
    max_upload_size_mb: int | None
    min_samples: int | None
    max_samples: int | None
    poll_interval_s: int
    tags: list[str]
    django_id: int | None
    created_at: datetime
    updated_at: datetime


class PanelFields(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    build: Build
    populations: list[Annotated[str, Field(min_length=1, max_length=50)]] = Field(default_factory=list)
    samples_count: int | None = Field(default=None, ge=0)
    variants_count: int | None = Field(default=None, ge=0)
    is_active: bool = True
    parameters: dict[str, Any] = Field(default_factory=dict)


class PanelCreate(PanelFields):
    """A new reference panel of a service; `panel_id` is the remote server's own id."""

    panel_id: str = Field(min_length=1, max_length=200)


class PanelUpdate(BaseModel):
    """A partial change to a reference panel."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=200)
    build: Build | None = None
    populations: list[Annotated[str, Field(min_length=1, max_length=50)]] | None = None
    samples_count: int | None = Field(default=None, ge=0)
    variants_count: int | None = Field(default=None, ge=0)
    is_active: bool | None = None
    parameters: dict[str, Any] | None = None


class PanelRead(BaseModel):
    """A reference panel."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    service_id: int
    panel_id: str
    name: str
    build: str
    populations: list[str]
    samples_count: int | None
    variants_count: int | None
    is_active: bool
    parameters: dict[str, Any]
    created_at: datetime
    updated_at: datetime


class HealthRead(BaseModel):
    """The latest health of a service (the seed system's shape)."""

    service_id: int
    status: HealthStatus
    response_time_ms: float | None
    error_message: str | None
    checked_at: datetime | None


class HealthLogRead(BaseModel):
    """One row of a service's health log."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    service_id: int
    status: HealthStatus
    http_status: int | None
    response_time_ms: float | None
    error_message: str | None
    checked_at: datetime


class ConnectionTest(BaseModel):
    """A URL and protocol to probe without saving anything (the admin's wizard)."""

    model_config = ConfigDict(extra="forbid")

    api_type: ApiType
    base_url: BaseUrl
    credential: SecretStr | None = None


class ConnectionTestResult(BaseModel):
    """What the probe found."""

    status: HealthStatus
    http_status: int | None
    response_time_ms: float | None
    error_message: str | None
    details: dict[str, Any]


class SyncResult(BaseModel):
    """What a panel sync changed, by the remote panel ids."""

    service_id: int
    added: list[str]
    updated: list[str]
    deactivated: list[str]
    unchanged: list[str]
    capabilities: dict[str, Any]


class PanelUpsert(PanelFields):
    """A panel as Django holds it, keyed by `panel_id` within its service."""

    panel_id: str = Field(min_length=1, max_length=200)


class DjangoServiceUpsert(_ServiceFields):
    """A service as the Django admin holds it, pushed after each save (keyed by the Django id)."""

    model_config = ConfigDict(extra="ignore")

    name: str = Field(min_length=1, max_length=200)
    slug: str | None = Field(default=None, pattern=r"^[a-z0-9]+(?:-[a-z0-9]+)*$", max_length=100)
    api_type: ApiType
    base_url: BaseUrl
    panels: list[PanelUpsert] | None = None


class CredentialRead(BaseModel):
    """A service's decrypted credential, for the platform's own services only."""

    credential: str | None
    auth_mode: AuthMode
