"""Response schemas of the gateway's own endpoints."""

from typing import Any

from pydantic import BaseModel, Field


class JobStats(BaseModel):
    total: int = 0
    completed: int = 0
    running: int = 0
    failed: int = 0
    success_rate: float = Field(0.0, description="Completed jobs as a percentage of finished ones.")


class ServiceStats(BaseModel):
    total: int = 0
    available: int = 0
    unavailable: int = 0
    healthy: int = 0


class DashboardRead(BaseModel):
    """The landing page's figures; parts whose service did not answer are listed in `unavailable`."""

    job_stats: JobStats
    service_stats: ServiceStats
    recent_jobs: list[dict[str, Any]]
    notifications: dict[str, Any] | None = None
    system_stats: dict[str, Any] | None = None
    unavailable: list[str] = Field(default_factory=list, description="Services that did not answer in time.")
