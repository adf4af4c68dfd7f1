"""Settings of the notification service, read from `NOTIFICATION_*` and the platform-wide variables.

The SMTP settings are read as `NOTIFICATION_SMTP_*` or, as compose writes them, `SMTP_*`.
"""

from typing import ClassVar

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import SettingsConfigDict

from microservices.common.settings import ServiceSettings


def _smtp(name: str) -> AliasChoices:
    return AliasChoices(f"NOTIFICATION_{name}", name)


class Settings(ServiceSettings):
    """Notification service settings."""

    model_config = SettingsConfigDict(env_prefix="NOTIFICATION_", extra="ignore")

    service_name: ClassVar[str] = "notification"
    port: int = 8005

    smtp_host: str | None = Field(default=None, validation_alias=_smtp("SMTP_HOST"))
    smtp_port: int = Field(default=587, validation_alias=_smtp("SMTP_PORT"))
    smtp_username: str | None = Field(default=None, validation_alias=_smtp("SMTP_USERNAME"))
    smtp_password: SecretStr | None = Field(default=None, validation_alias=_smtp("SMTP_PASSWORD"))
    # STARTTLS on the submission port; port 465 always speaks TLS from the first byte.
    smtp_use_tls: bool = Field(default=False, validation_alias=_smtp("SMTP_USE_TLS"))
    smtp_from: str = Field(default="noreply@example.org", validation_alias=_smtp("SMTP_FROM"))
    smtp_timeout_s: float = 10.0

    # Where links in e-mails point (the web front end).
    public_url: str = Field(
        default="http://localhost:3000", validation_alias=AliasChoices("NOTIFICATION_PUBLIC_URL", "PUBLIC_URL")
    )

    email_max_attempts: int = 5
    email_retry_base_s: float = 30.0
    webhook_max_attempts: int = 6
    webhook_retry_base_s: float = 10.0
    webhook_timeout_s: float = 10.0
    # Webhooks to loopback and private addresses reach into the platform's own network: off unless asked for.
    webhook_allow_private_urls: bool = False
    # How often the e-mail and webhook queues are looked at when nothing wakes them.
    delivery_poll_interval_s: float = 2.0

    websocket_heartbeat_s: float = 25.0
    websocket_auth_timeout_s: float = 5.0

    # Processed event ids, sent e-mails and finished webhook deliveries are kept this long.
    retention_days: int = 30

    # User e-mail addresses and the admin list come from the user service; cached for this long.
    directory_cache_ttl_s: float = 300.0

    # Names on Redis: streams (database 3) and pub/sub channels. Tests give them a prefix of their own.
    events_stream_prefix: str = "events:"
    pubsub_prefix: str = "notifications:"
    consume_events: bool = True
    event_claim_idle_ms: int = 30_000

    @property
    def smtp_configured(self) -> bool:
        """True when an SMTP host is set."""
        return bool(self.smtp_host)
