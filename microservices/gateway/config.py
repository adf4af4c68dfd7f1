"""Settings of the api gateway, read from `GATEWAY_*` and the platform-wide variables."""

from pathlib import Path
from typing import ClassVar

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from microservices.common.settings import ServiceSettings


class Settings(ServiceSettings):
    """API gateway settings."""

    model_config = SettingsConfigDict(env_prefix="GATEWAY_", extra="ignore")

    service_name: ClassVar[str] = "gateway"
    port: int = 8000

    # Upstream calls on the proxy path. The read timeout is per socket read, so a long download is fine
    # as long as bytes keep coming.
    upstream_connect_timeout_s: float = 5.0
    upstream_read_timeout_s: float = 60.0
    upstream_max_connections: int = 200
    # Aggregation calls (dashboard, merged OpenAPI) each get this long before being reported unavailable.
    aggregate_timeout_s: float = 3.0

    # Requests per window: anonymous callers (per client address) and users without a higher tier, then tiers
    # by role (the highest of the caller's roles wins). Service accounts are the platform's own and not limited.
    rate_limit_enabled: bool = True
    rate_limit_window_s: int = 3600
    rate_limit_default: int = 1000
    rate_limit_tiers: dict[str, int] = {"service_admin": 5000, "admin": 10000}
    # How often the counts of this gateway are added to the shared ones in Redis (see ratelimit.py).
    rate_limit_report_interval_s: float = Field(default=0.05, gt=0, le=10)

    # Circuit breaker per upstream: opens after this many consecutive failures, lets a probe through after
    # the cool-down.
    breaker_failure_threshold: int = 5
    breaker_cooldown_s: float = 15.0

    # Personal API tokens are resolved by the user service; the answer is kept this long (a revoked token
    # keeps working through the gateway for at most this long).
    introspection_cache_s: float = 5.0

    # A built front end (index.html and assets) served at `/` with SPA fallback, when set.
    frontend_dir: Path | None = None
