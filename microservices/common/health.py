"""The `/health` endpoint: each dependency checked concurrently, with its own timeout."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

CheckStatus = Literal["healthy", "warning", "unhealthy"]


@dataclass(frozen=True)
class HealthCheck:
    """A named probe: returns None when healthy, a sentence when merely worth a warning, raises when failing."""

    name: str
    probe: Callable[[], Awaitable[str | None]]
    critical: bool = True
    timeout_s: float = 2.0


class CheckResult(BaseModel):
    status: CheckStatus
    response_time_ms: float
    error: str | None = None


class HealthReport(BaseModel):
    status: Literal["healthy", "degraded", "unhealthy"]
    service: str
    version: str
    checks: dict[str, CheckResult]


async def run_check(check: HealthCheck) -> CheckResult:
    """Run one probe within its timeout and describe the outcome."""
    started = time.perf_counter()
    try:
        warning = await asyncio.wait_for(check.probe(), timeout=check.timeout_s)
    except TimeoutError:
        status: CheckStatus = "unhealthy"
        error: str | None = f"no answer within {check.timeout_s:g} s"
    except Exception as exc:
        status, error = "unhealthy", f"{type(exc).__name__}: {exc}"[:500]
    else:
        status, error = ("warning", warning) if warning else ("healthy", None)
    return CheckResult(status=status, response_time_ms=round((time.perf_counter() - started) * 1000, 2), error=error)


async def build_report(*, service: str, version: str, checks: Sequence[HealthCheck]) -> HealthReport:
    """Run every check concurrently and sum them up."""
    results = await asyncio.gather(*(run_check(c) for c in checks))
    by_name = {c.name: r for c, r in zip(checks, results, strict=True)}
    failing = [c for c, r in zip(checks, results, strict=True) if r.status == "unhealthy"]
    if any(c.critical for c in failing):
        overall: Literal["healthy", "degraded", "unhealthy"] = "unhealthy"
    elif failing or any(r.status == "warning" for r in results):
        overall = "degraded"
    else:
        overall = "healthy"
    return HealthReport(status=overall, service=service, version=version, checks=by_name)


router = APIRouter(tags=["operations"])


@router.get("/health", response_model=HealthReport, responses={503: {"model": HealthReport}})
async def health(request: Request) -> Any:
    """This service's health and that of each dependency; 503 when a critical one fails."""
    settings = request.app.state.settings
    report = await build_report(
        service=settings.service_name, version=settings.version, checks=request.app.state.health_checks
    )
    status_code = 503 if report.status == "unhealthy" else 200
    return JSONResponse(report.model_dump(), status_code=status_code)
