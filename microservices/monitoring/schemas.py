"""Response shapes of the monitoring service."""

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel

ComponentStatus = Literal["healthy", "degraded", "unhealthy"]


class ComponentHealth(BaseModel):
    service_name: str
    status: ComponentStatus
    response_time_ms: float
    checked_at: datetime
    error: str | None = None


class OverallHealth(BaseModel):
    overall_status: ComponentStatus
    services: list[ComponentHealth]
    active_alerts: list[dict[str, Any]]
    checked_at: datetime
