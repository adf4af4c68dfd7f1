"""Response shapes of the monitoring service."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

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


class HealthPoint(BaseModel):
    checked_at: datetime
    status: str
    response_time_ms: float
    error: str | None = None


class ComponentHistory(BaseModel):
    service_name: str
    status: str | None
    last_checked_at: datetime | None
    uptime_24h: float | None = Field(description="Percentage of samples not unhealthy over 24 hours")
    uptime_7d: float | None = Field(description="Percentage of samples not unhealthy over 7 days")
    history: list[HealthPoint]


class ServicesHealth(BaseModel):
    services: list[ComponentHistory]


class SystemMetrics(BaseModel):
    cpu_percent: float
    cpu_count: int
    load_average: list[float]
    memory_total_bytes: int
    memory_used_bytes: int
    memory_percent: float
    disk_path: str
    disk_total_bytes: int
    disk_used_bytes: int
    disk_percent: float
    boot_time: datetime
    measured_at: datetime


class AlertRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    rule_id: int
    subject: str
    severity: str
    title: str
    message: str
    status: str
    opened_at: datetime
    resolved_at: datetime | None
    acknowledged_at: datetime | None
    acknowledged_by: str | None


class AlertRuleRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    kind: str
    name: str
    threshold: float
    duration_s: int
    severity: str
    enabled: bool


class AlertRuleUpdate(BaseModel):
    threshold: float | None = Field(default=None, ge=0)
    duration_s: int | None = Field(default=None, ge=0)
    severity: Literal["info", "warning", "critical"] | None = None
    enabled: bool | None = None


class ServiceStats(BaseModel):
    service_id: int | None
    jobs: int
    completed: int
    failed: int
    success_rate: float | None
    median_queue_s: float | None
    median_run_s: float | None


class PeriodStats(BaseModel):
    jobs_by_status: dict[str, int]
    total_jobs: int
    completed: int
    failed: int
    success_rate: float | None = Field(description="Completed among finished (completed or failed), 0-100")
    per_service: list[ServiceStats]
    active_users: int
    uploads: int
    upload_bytes: int


class DashboardStats(BaseModel):
    day: PeriodStats
    week: PeriodStats
    month: PeriodStats
    generated_at: datetime
