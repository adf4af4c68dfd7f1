"""Monitoring: every component probed concurrently, samples and uptime, alert rules, statistics from events."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psutil
from redis.asyncio import Redis
from sqlalchemy import Select, case, delete, func, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from microservices.common.db import Database
from microservices.common.errors import NotFound
from microservices.common.events import (
    FILE_UPLOAD_COMPLETED,
    JOB_STATUS_UPDATED,
    NOTIFICATION_REQUESTED,
    SERVICE_HEALTH_CHANGED,
    USER_ACTION_LOGGED,
    Event,
    emit,
)
from microservices.common.heartbeat import live_workers_async
from microservices.common.settings import FASTAPI_SERVICES
from microservices.monitoring.models import (
    Alert,
    AlertRule,
    ExternalServiceStatus,
    HealthHourly,
    HealthSample,
    JobStat,
    UploadStat,
    UserActivity,
)
from microservices.monitoring.schemas import (
    AlertRead,
    AlertRuleUpdate,
    ComponentHealth,
    ComponentHistory,
    ComponentStatus,
    DashboardStats,
    HealthPoint,
    OverallHealth,
    PeriodStats,
    ServicesHealth,
    ServiceStats,
    SystemMetrics,
)

logger = logging.getLogger(__name__)

# Without these nothing works; any other component down leaves the platform degraded, not down.
CRITICAL_COMPONENTS = frozenset({"postgresql", "redis", "gateway", "user_service"})

Probe = Callable[[], Awaitable[ComponentStatus]]


async def _timed(name: str, probe: Probe, timeout_s: float) -> ComponentHealth:
    started = time.perf_counter()
    error: str | None = None
    try:
        status = await asyncio.wait_for(probe(), timeout=timeout_s)
    except TimeoutError:
        status, error = "unhealthy", f"no answer within {timeout_s:g} s"
    except Exception as exc:
        status, error = "unhealthy", f"{type(exc).__name__}: {exc}"[:300]
    return ComponentHealth(
        service_name=name,
        status=status,
        response_time_ms=round((time.perf_counter() - started) * 1000, 2),
        checked_at=datetime.now(UTC),
        error=error,
    )


def http_probe(http: httpx.AsyncClient, base_url: str) -> Probe:
    """A component is as healthy as its own /health says; anything but 200 is unhealthy."""

    async def probe() -> ComponentStatus:
        response = await http.get(f"{base_url.rstrip('/')}/health")
        if response.status_code != 200:
            raise RuntimeError(f"/health answered {response.status_code}")
        return "degraded" if response.json().get("status") == "degraded" else "healthy"

    return probe


def database_probe(database: Database) -> Probe:
    async def probe() -> ComponentStatus:
        await database.ping()
        return "healthy"

    return probe


def redis_probe(client: Redis) -> Probe:
    async def probe() -> ComponentStatus:
        await client.ping()
        return "healthy"

    return probe


def celery_probe(client: Redis, component: str) -> Probe:
    async def probe() -> ComponentStatus:
        if not await live_workers_async(client, component):
            raise RuntimeError(f"no {component} worker heartbeat")
        return "healthy"

    return probe


def summarise(components: list[ComponentHealth]) -> ComponentStatus:
    """Unhealthy when a critical component is down, degraded when any other is, else healthy."""
    if any(c.status == "unhealthy" and c.service_name in CRITICAL_COMPONENTS for c in components):
        return "unhealthy"
    if any(c.status != "healthy" for c in components):
        return "degraded"
    return "healthy"


async def overall_health(
    *, probes: dict[str, Probe], timeout_s: float, active_alerts: list[dict[str, Any]] | None = None
) -> OverallHealth:
    """Probe every component at once and sum up."""
    components = list(await asyncio.gather(*(_timed(n, p, timeout_s) for n, p in probes.items())))
    return OverallHealth(
        overall_status=summarise(components),
        services=components,
        active_alerts=active_alerts or [],
        checked_at=datetime.now(UTC),
    )


def component_probes(
    *, http: httpx.AsyncClient, database: Database, redis: Redis, peers: dict[str, str], celery_components: list[str]
) -> dict[str, Probe]:
    """A probe for every component of the platform."""
    probes = {name: http_probe(http, peers[name]) for name in (*FASTAPI_SERVICES, "django")}
    probes["postgresql"] = database_probe(database)
    probes["redis"] = redis_probe(redis)
    for component in celery_components:
        probes[f"celery_{component}"] = celery_probe(redis, component)
    return probes


# --- samples, uptime and retention --------------------------------------------------------------------------------


async def record_samples(*, session: AsyncSession, components: list[ComponentHealth]) -> None:
    """Store one probe result per component."""
    session.add_all(
        HealthSample(
            component=c.service_name,
            status=c.status,
            response_time_ms=c.response_time_ms,
            error=c.error,
            checked_at=c.checked_at,
        )
        for c in components
    )
    await session.flush()


_ROLLUP = text(
    """
    INSERT INTO health_hourly (component, hour, samples, healthy, degraded, unhealthy, avg_response_time_ms)
    SELECT component, date_trunc('hour', checked_at), count(*),
           count(*) FILTER (WHERE status = 'healthy'), count(*) FILTER (WHERE status = 'degraded'),
           count(*) FILTER (WHERE status = 'unhealthy'), avg(response_time_ms)
    FROM health_sample
    WHERE checked_at >= date_trunc('hour', now()) - interval '1 hour'
    GROUP BY 1, 2
    ON CONFLICT (component, hour) DO UPDATE SET
        samples = excluded.samples, healthy = excluded.healthy, degraded = excluded.degraded,
        unhealthy = excluded.unhealthy, avg_response_time_ms = excluded.avg_response_time_ms
    """
)


async def rollup_hourly(*, session: AsyncSession) -> None:
    """Refresh the hourly aggregates of the current and the previous hour from the raw samples."""
    await session.execute(_ROLLUP)


async def apply_retention(*, session: AsyncSession, raw_days: int, hourly_days: int) -> dict[str, int]:
    """Delete raw samples and hourly aggregates past their retention (the event tables prune themselves)."""
    now = datetime.now(UTC)
    deleted = {}
    for name, statement in (
        ("health_sample", delete(HealthSample).where(HealthSample.checked_at < now - timedelta(days=raw_days))),
        ("health_hourly", delete(HealthHourly).where(HealthHourly.hour < now - timedelta(days=hourly_days))),
    ):
        result = await session.execute(statement)
        deleted[name] = int(result.rowcount or 0)  # type: ignore[attr-defined]
    return deleted


async def services_health(*, session: AsyncSession, history_limit: int) -> ServicesHealth:
    """Each component's latest state, recent samples and uptime over 24 hours (raw) and 7 days (hourly)."""
    day = (
        await session.execute(
            select(
                HealthSample.component,
                func.count(),
                func.count().filter(HealthSample.status != "unhealthy"),
            )
            .where(HealthSample.checked_at >= func.now() - timedelta(hours=24))
            .group_by(HealthSample.component)
        )
    ).all()
    week = (
        await session.execute(
            select(HealthHourly.component, func.sum(HealthHourly.samples), func.sum(HealthHourly.unhealthy))
            .where(HealthHourly.hour >= func.date_trunc("hour", func.now()) - timedelta(days=7))
            .group_by(HealthHourly.component)
        )
    ).all()
    uptime_day = {c: round(100 * ok / total, 2) for c, total, ok in day if total}
    uptime_week = {c: round(100 * (int(total) - int(bad)) / int(total), 2) for c, total, bad in week if total}
    ranked = (
        select(
            HealthSample,
            func.row_number()
            .over(partition_by=HealthSample.component, order_by=HealthSample.checked_at.desc())
            .label("rank"),
        )
        .where(HealthSample.checked_at >= func.now() - timedelta(hours=24))
        .subquery()
    )
    recent = (
        await session.execute(
            select(ranked)
            .where(ranked.c.rank <= history_limit)
            .order_by(ranked.c.component, ranked.c.checked_at.desc())
        )
    ).all()
    history: dict[str, list[HealthPoint]] = {}
    for row in recent:
        history.setdefault(row.component, []).append(
            HealthPoint(
                checked_at=row.checked_at, status=row.status, response_time_ms=row.response_time_ms, error=row.error
            )
        )
    names = sorted(set(history) | set(uptime_week))
    return ServicesHealth(
        services=[
            ComponentHistory(
                service_name=name,
                status=history[name][0].status if history.get(name) else None,
                last_checked_at=history[name][0].checked_at if history.get(name) else None,
                uptime_24h=uptime_day.get(name),
                uptime_7d=uptime_week.get(name),
                history=history.get(name, []),
            )
            for name in names
        ]
    )


def system_metrics(*, disk_path: str) -> SystemMetrics:
    """CPU, memory and disk of the host (blocking for a tenth of a second: run it in a thread)."""
    memory = psutil.virtual_memory()
    disk = psutil.disk_usage(disk_path)
    return SystemMetrics(
        cpu_percent=psutil.cpu_percent(interval=0.1),
        cpu_count=psutil.cpu_count() or 1,
        load_average=[round(x, 2) for x in psutil.getloadavg()],
        memory_total_bytes=memory.total,
        memory_used_bytes=memory.total - memory.available,
        memory_percent=memory.percent,
        disk_path=disk_path,
        disk_total_bytes=disk.total,
        disk_used_bytes=disk.used,
        disk_percent=disk.percent,
        boot_time=datetime.fromtimestamp(psutil.boot_time(), UTC),
        measured_at=datetime.now(UTC),
    )


# --- alerts -------------------------------------------------------------------------------------------------------

Condition = dict[str, tuple[str, str]]  # subject -> (title, message)


async def unhealthy_since(*, session: AsyncSession, component: str) -> datetime | None:
    """When the component's current run of unhealthy samples began (None when its last sample is not unhealthy)."""
    last_ok = await session.scalar(
        select(func.max(HealthSample.checked_at)).where(
            HealthSample.component == component, HealthSample.status != "unhealthy"
        )
    )
    statement = select(func.min(HealthSample.checked_at)).where(HealthSample.component == component)
    if last_ok is not None:
        statement = statement.where(HealthSample.checked_at > last_ok)
    since: datetime | None = await session.scalar(statement)
    return since


async def _component_conditions(
    *, session: AsyncSession, rule: AlertRule, components: list[ComponentHealth], now: datetime
) -> Condition:
    found: Condition = {}
    for component in components:
        if component.status != "unhealthy":
            continue
        since = await unhealthy_since(session=session, component=component.service_name)
        if since is None or (now - since).total_seconds() < rule.duration_s:
            continue
        found[component.service_name] = (
            f"{component.service_name} is unhealthy",
            f"{component.service_name} has been unhealthy since {since:%Y-%m-%d %H:%M:%S} UTC"
            + (f": {component.error}" if component.error else "."),
        )
    return found


async def _external_conditions(*, session: AsyncSession, rule: AlertRule, now: datetime) -> Condition:
    rows = (
        await session.scalars(
            select(ExternalServiceStatus).where(
                ExternalServiceStatus.status.in_(("unhealthy", "down", "offline")),
                ExternalServiceStatus.changed_at <= now - timedelta(seconds=rule.duration_s),
            )
        )
    ).all()
    return {
        f"service:{row.service_id}": (
            f"External service {row.name} is down",
            f"{row.name} has been {row.status} since {row.changed_at:%Y-%m-%d %H:%M:%S} UTC"
            + (f": {row.error}" if row.error else "."),
        )
        for row in rows
    }


async def _failure_rate_conditions(
    *, session: AsyncSession, rule: AlertRule, now: datetime, min_jobs: int
) -> Condition:
    window = now - timedelta(seconds=rule.duration_s or 3600)
    row = (
        await session.execute(
            select(
                func.count().filter(JobStat.status == "failed"),
                func.count().filter(JobStat.status.in_(("completed", "failed"))),
            ).where(JobStat.finished_at >= window)
        )
    ).one()
    failed, finished = int(row[0]), int(row[1])
    if finished < max(1, min_jobs) or failed / finished < rule.threshold:
        return {}
    minutes = round((rule.duration_s or 3600) / 60)
    return {
        "jobs": (
            f"{round(100 * failed / finished)} % of jobs failed",
            f"{failed} of the {finished} jobs that finished in the last {minutes} minutes failed "
            f"(threshold {rule.threshold * 100:g} %).",
        )
    }


async def evaluate_alerts(
    *,
    session: AsyncSession,
    components: list[ComponentHealth],
    disk_percent: float,
    disk_path: str,
    min_jobs: int,
    now: datetime | None = None,
) -> list[Alert]:
    """Open an alert for each rule condition that newly holds, resolve those that cleared; return the opened."""
    now = now or datetime.now(UTC)
    opened: list[Alert] = []
    for rule in (await session.scalars(select(AlertRule).order_by(AlertRule.id))).all():
        conditions: Condition = {}
        if rule.enabled:
            if rule.kind == "component_unhealthy":
                conditions = await _component_conditions(session=session, rule=rule, components=components, now=now)
            elif rule.kind == "external_service_down":
                conditions = await _external_conditions(session=session, rule=rule, now=now)
            elif rule.kind == "job_failure_rate":
                conditions = await _failure_rate_conditions(session=session, rule=rule, now=now, min_jobs=min_jobs)
            elif rule.kind == "disk_usage" and disk_percent >= rule.threshold:
                conditions = {
                    f"disk:{disk_path}": (
                        f"Disk {disk_path} is {disk_percent:.0f} % full",
                        f"Disk usage of {disk_path} is {disk_percent:.1f} %, above the {rule.threshold:g} % threshold.",
                    )
                }
        resolve = update(Alert).where(Alert.rule_id == rule.id, Alert.status == "active")
        if conditions:
            resolve = resolve.where(Alert.subject.not_in(list(conditions)))
        await session.execute(resolve.values(status="resolved", resolved_at=now))
        for subject, (title, message) in conditions.items():
            alert_id = await session.scalar(
                pg_insert(Alert)
                .values(
                    rule_id=rule.id,
                    subject=subject,
                    severity=rule.severity,
                    title=title,
                    message=message,
                    opened_at=now,
                )
                .on_conflict_do_nothing(index_elements=["rule_id", "subject"], index_where=text("status = 'active'"))
                .returning(Alert.id)
            )
            if alert_id is None:
                continue  # already open: one alert, one notification, however long it lasts
            alert = await session.get(Alert, alert_id)
            assert alert is not None
            opened.append(alert)
            # The admins are told through the notification service, in this transaction (outbox).
            await emit(
                session,
                topic=NOTIFICATION_REQUESTED,
                payload={
                    "user_id": None,
                    "type": "alert",
                    "title": f"Alert: {title}",
                    "message": message,
                    "link": f"/admin/monitoring/alerts/{alert_id}",
                    "data": {"alert_id": alert_id, "rule": rule.kind, "severity": rule.severity},
                },
                producer="monitoring",
            )
    await session.flush()
    return opened


def alerts_statement(*, status: str | None) -> Select[Any]:
    """Alerts, newest first, optionally only `active` or `resolved` ones."""
    statement = select(Alert).order_by(Alert.id.desc())
    return statement.where(Alert.status == status) if status else statement


async def active_alerts(*, session: AsyncSession) -> list[Alert]:
    """Alerts open now, newest first."""
    return list((await session.scalars(alerts_statement(status="active"))).all())


async def active_alerts_if_reachable(*, database: Database, timeout_s: float) -> list[dict[str, Any]]:
    """The open alerts as JSON, or none when the database is away (the overall health must still answer)."""
    try:
        async with asyncio.timeout(timeout_s), database.sessionmaker() as session:
            alerts = await active_alerts(session=session)
    except Exception as exc:
        logger.warning("active alerts not read: %s", exc)
        return []
    return [AlertRead.model_validate(a).model_dump(mode="json") for a in alerts]


async def acknowledge_alert(*, session: AsyncSession, alert_id: int, by: str) -> Alert:
    """Record that someone is looking at the alert (the first acknowledgement is kept)."""
    alert = await session.get(Alert, alert_id)
    if alert is None:
        raise NotFound(f"Alert {alert_id} was not found.", code="alert_not_found")
    if alert.acknowledged_at is None:
        alert.acknowledged_at = datetime.now(UTC)
        alert.acknowledged_by = by
        await session.flush()
    return alert


async def list_rules(*, session: AsyncSession) -> list[AlertRule]:
    """Every alert rule."""
    return list((await session.scalars(select(AlertRule).order_by(AlertRule.id))).all())


async def update_rule(*, session: AsyncSession, rule_id: int, rule_in: AlertRuleUpdate) -> AlertRule:
    """Change a rule's threshold, duration, severity or whether it is evaluated."""
    rule = await session.get(AlertRule, rule_id)
    if rule is None:
        raise NotFound(f"Alert rule {rule_id} was not found.", code="alert_rule_not_found")
    for name, value in rule_in.model_dump(exclude_none=True).items():
        setattr(rule, name, value)
    await session.flush()
    await session.refresh(rule)
    return rule


# --- statistics from events ---------------------------------------------------------------------------------------

TERMINAL = ("completed", "failed", "cancelled")


def _when(value: Any, default: datetime) -> datetime:
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            parsed = datetime.fromisoformat(value)
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return default


async def _user_active(session: AsyncSession, user_id: Any, at: datetime) -> None:
    if user_id is None or not str(user_id).isdigit():
        return
    day = at.replace(hour=0, minute=0, second=0, microsecond=0)
    await session.execute(pg_insert(UserActivity).values(user_id=int(user_id), day=day).on_conflict_do_nothing())


def _int_or_none(value: Any) -> int | None:
    return int(value) if value is not None and str(value).lstrip("-").isdigit() else None


async def record_event(*, session: AsyncSession, event: Event) -> None:
    """Fold one bus event into the dashboard's tables."""
    payload = event.payload
    at = _when(payload.get("occurred_at"), event.occurred_at)
    if event.topic == JOB_STATUS_UPDATED:
        status = str(payload.get("new_status"))
        values: dict[str, Any] = {
            "job_id": str(payload["job_id"]),
            "user_id": _int_or_none(payload.get("user_id")),
            "service_id": _int_or_none(payload.get("service_id")),
            "status": status,
            "created_at": at,
            "queued_at": at if status == "queued" else None,
            "started_at": at if status == "running" else None,
            "finished_at": at if status in TERMINAL else None,
            "updated_at": at,
        }
        table = JobStat.__table__
        insert = pg_insert(JobStat).values(**values)
        newer = insert.excluded.updated_at >= table.c.updated_at
        await session.execute(
            insert.on_conflict_do_update(
                index_elements=["job_id"],
                set_={
                    # Events can arrive out of order: the latest state wins, the first time of each stage stays.
                    "status": case((newer, insert.excluded.status), else_=table.c.status),
                    "updated_at": func.greatest(table.c.updated_at, insert.excluded.updated_at),
                    "created_at": func.least(table.c.created_at, insert.excluded.created_at),
                    "queued_at": func.coalesce(table.c.queued_at, insert.excluded.queued_at),
                    "started_at": func.coalesce(table.c.started_at, insert.excluded.started_at),
                    "finished_at": func.coalesce(table.c.finished_at, insert.excluded.finished_at),
                    "user_id": func.coalesce(table.c.user_id, insert.excluded.user_id),
                    "service_id": func.coalesce(table.c.service_id, insert.excluded.service_id),
                },
            )
        )
        await _user_active(session, payload.get("user_id"), at)
    elif event.topic == FILE_UPLOAD_COMPLETED:
        await session.execute(
            pg_insert(UploadStat)
            .values(
                file_id=str(payload["file_id"]),
                user_id=_int_or_none(payload.get("user_id")),
                size_bytes=int(payload.get("size_bytes") or 0),
                uploaded_at=at,
            )
            .on_conflict_do_nothing()
        )
        await _user_active(session, payload.get("user_id"), at)
    elif event.topic == USER_ACTION_LOGGED:
        await _user_active(session, payload.get("user_id"), at)
    elif event.topic == SERVICE_HEALTH_CHANGED:
        values = {
            "service_id": str(payload.get("service_id")),
            "name": str(payload.get("name") or payload.get("service_id")),
            "status": str(payload.get("new_status")),
            "error": payload.get("error"),
            "changed_at": _when(payload.get("checked_at"), event.occurred_at),
            "event_id": uuid.UUID(event.id),
        }
        table = ExternalServiceStatus.__table__
        insert = pg_insert(ExternalServiceStatus).values(**values)
        await session.execute(
            insert.on_conflict_do_update(
                index_elements=["service_id"],
                set_={k: insert.excluded[k] for k in ("name", "status", "error", "changed_at", "event_id")},
                where=insert.excluded.changed_at >= table.c.changed_at,
            )
        )


_PER_SERVICE = text(
    """
    SELECT service_id, count(*) AS jobs,
           count(*) FILTER (WHERE status = 'completed') AS completed,
           count(*) FILTER (WHERE status = 'failed') AS failed,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM started_at - coalesce(queued_at, created_at)))
               FILTER (WHERE started_at IS NOT NULL) AS median_queue_s,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM finished_at - started_at))
               FILTER (WHERE started_at IS NOT NULL AND finished_at IS NOT NULL) AS median_run_s
    FROM job_stat WHERE created_at >= :since
    GROUP BY service_id ORDER BY service_id NULLS LAST
    """
)


def _rate(completed: int, failed: int) -> float | None:
    return round(100 * completed / (completed + failed), 2) if completed + failed else None


async def period_stats(*, session: AsyncSession, since: datetime) -> PeriodStats:
    """Jobs, services, active users and uploads since `since`."""
    by_status = dict(
        (
            await session.execute(
                select(JobStat.status, func.count()).where(JobStat.created_at >= since).group_by(JobStat.status)
            )
        ).all()
    )
    per_service = [
        ServiceStats(
            service_id=row.service_id,
            jobs=row.jobs,
            completed=row.completed,
            failed=row.failed,
            success_rate=_rate(row.completed, row.failed),
            median_queue_s=round(row.median_queue_s, 3) if row.median_queue_s is not None else None,
            median_run_s=round(row.median_run_s, 3) if row.median_run_s is not None else None,
        )
        for row in (await session.execute(_PER_SERVICE, {"since": since})).all()
    ]
    active_users = await session.scalar(
        select(func.count(func.distinct(UserActivity.user_id))).where(
            UserActivity.day >= since.replace(hour=0, minute=0, second=0, microsecond=0)
        )
    )
    uploads, upload_bytes = (
        await session.execute(
            select(func.count(), func.coalesce(func.sum(UploadStat.size_bytes), 0)).where(
                UploadStat.uploaded_at >= since
            )
        )
    ).one()
    completed, failed = by_status.get("completed", 0), by_status.get("failed", 0)
    return PeriodStats(
        jobs_by_status=by_status,
        total_jobs=sum(by_status.values()),
        completed=completed,
        failed=failed,
        success_rate=_rate(completed, failed),
        per_service=per_service,
        active_users=int(active_users or 0),
        uploads=int(uploads),
        upload_bytes=int(upload_bytes),
    )


async def dashboard_stats(*, session: AsyncSession, now: datetime | None = None) -> DashboardStats:
    """The dashboard's figures for the last day, week and month."""
    now = now or datetime.now(UTC)
    return DashboardStats(
        day=await period_stats(session=session, since=now - timedelta(days=1)),
        week=await period_stats(session=session, since=now - timedelta(days=7)),
        month=await period_stats(session=session, since=now - timedelta(days=30)),
        generated_at=now,
    )
