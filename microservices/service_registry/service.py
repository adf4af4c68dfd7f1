"""The service registry's domain logic: services, panels, health records and panel sync (sessions only flush)."""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
from cryptography.fernet import MultiFernet
from sqlalchemy import Select, Text, cast, delete, false, func, or_, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from microservices.common.errors import Conflict, NotFound
from microservices.common.events import SERVICE_CHANGED, SERVICE_HEALTH_CHANGED, emit
from microservices.common.pagination import Page, PageParams, paginate
from microservices.service_registry.crypto import decrypt, encrypt
from microservices.service_registry.models import HealthCheck, ImputationService, ReferencePanel
from microservices.service_registry.remote import (
    ProbeResult,
    RemotePanel,
    read_michigan_panels,
    read_wes_capabilities,
)
from microservices.service_registry.schemas import (
    DjangoServiceUpsert,
    HealthLogRead,
    HealthRead,
    PanelCreate,
    PanelRead,
    PanelUpdate,
    PanelUpsert,
    ServiceCreate,
    ServiceRead,
    ServiceUpdate,
    SyncResult,
)

logger = logging.getLogger(__name__)

PRODUCER = "service_registry"
# `origin` of service.changed events: who made the change, so that Django never echoes its own changes back.
ORIGIN_REGISTRY = "registry"
ORIGIN_DJANGO = "django"
ORIGIN_HEALTH = "health_checker"


# --- services -----------------------------------------------------------------------------------------------------


def service_read(service: ImputationService) -> ServiceRead:
    """The public view of a service: the credential only as `has_credential`."""
    return ServiceRead.model_validate(
        {
            **{c: getattr(service, c) for c in ServiceRead.model_fields if hasattr(service, c)},
            "has_credential": service.credential_encrypted is not None,
            "is_available": service.is_active and service.health_status == "healthy",
        }
    )


def health_read(service: ImputationService) -> HealthRead:
    """The latest health of a service, as stored."""
    return HealthRead(
        service_id=service.id,
        status=service.health_status,
        response_time_ms=service.response_time_ms,
        error_message=service.last_error,
        checked_at=service.last_checked_at,
    )


async def emit_service_changed(*, session: AsyncSession, service: ImputationService, action: str, origin: str) -> None:
    """Publish `service.changed` in the transaction of the change."""
    await session.flush()
    await session.refresh(service)
    await emit(
        session,
        topic=SERVICE_CHANGED,
        payload={
            "service_id": service.id,
            "action": action,
            "origin": origin,
            "service": service_read(service).model_dump(mode="json"),
        },
        producer=PRODUCER,
    )


def slugify(text: str) -> str:
    """Lower-case words joined by hyphens."""
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return slug[:90] or "service"


async def _free_slug(*, session: AsyncSession, wanted: str, exclude_id: int | None = None) -> str:
    taken_query = select(ImputationService.slug).where(ImputationService.slug.like(f"{wanted}%"))
    if exclude_id is not None:
        taken_query = taken_query.where(ImputationService.id != exclude_id)
    taken = set((await session.scalars(taken_query)).all())
    if wanted not in taken:
        return wanted
    suffix = 2
    while f"{wanted}-{suffix}" in taken:
        suffix += 1
    return f"{wanted}-{suffix}"


async def _check_unique(
    *, session: AsyncSession, name: str | None, slug: str | None, exclude_id: int | None = None
) -> None:
    for column, value, label in ((ImputationService.name, name, "name"), (ImputationService.slug, slug, "slug")):
        if value is None:
            continue
        query = select(ImputationService.id).where(func.lower(column) == value.lower())
        if exclude_id is not None:
            query = query.where(ImputationService.id != exclude_id)
        if await session.scalar(query) is not None:
            raise Conflict(f"A service with the {label} '{value}' already exists.", code=f"duplicate_{label}")


async def get_service(*, session: AsyncSession, id_or_slug: str | int) -> ImputationService:
    """A service by numeric id or slug; 404 when there is none."""
    text = str(id_or_slug)
    column = ImputationService.id if text.isdigit() else ImputationService.slug
    value: Any = int(text) if text.isdigit() else text
    service = await session.scalar(select(ImputationService).where(column == value))
    if service is None:
        raise NotFound(f"There is no service '{text}'.", code="service_not_found")
    return service


async def list_services(
    *,
    session: AsyncSession,
    params: PageParams,
    api_type: str | None = None,
    country_code: str | None = None,
    is_active: bool | None = None,
    health_status: str | None = None,
    tag: str | None = None,
    search: str | None = None,
) -> Page[ServiceRead]:
    """A page of services, filtered, by name."""
    query: Select[Any] = select(ImputationService).order_by(func.lower(ImputationService.name), ImputationService.id)
    if api_type is not None:
        query = query.where(ImputationService.api_type == api_type)
    if country_code is not None:
        query = query.where(ImputationService.country_code == country_code.upper())
    if is_active is not None:
        query = query.where(ImputationService.is_active == (true() if is_active else false()))
    if health_status is not None:
        query = query.where(ImputationService.health_status == health_status)
    if tag is not None:
        query = query.where(ImputationService.tags.contains([tag.lower()]))
    if search:
        pattern = f"%{search.lower()}%"
        query = query.where(
            or_(func.lower(ImputationService.name).like(pattern), func.lower(ImputationService.location).like(pattern))
        )
    rows, total = await paginate(session, query, params)
    return Page[ServiceRead](
        items=[service_read(s) for s in rows], total=total, page=params.page, page_size=params.page_size
    )


async def create_service(
    *,
    session: AsyncSession,
    service_in: ServiceCreate,
    fernet: MultiFernet | None,
    origin: str = ORIGIN_REGISTRY,
    django_id: int | None = None,
) -> ImputationService:
    """Register a service (409 on a duplicate name or slug) and publish `service.changed`."""
    await _check_unique(session=session, name=service_in.name, slug=service_in.slug)
    slug = service_in.slug or await _free_slug(session=session, wanted=slugify(service_in.name))
    fields = service_in.model_dump(exclude={"credential", "slug"})
    service = ImputationService(**fields, slug=slug, django_id=django_id, capabilities={})
    if service_in.credential is not None:
        service.credential_encrypted = encrypt(fernet, service_in.credential.get_secret_value())
    session.add(service)
    await emit_service_changed(session=session, service=service, action="created", origin=origin)
    return service


async def update_service(
    *,
    session: AsyncSession,
    service: ImputationService,
    service_in: ServiceUpdate,
    fernet: MultiFernet | None,
    origin: str = ORIGIN_REGISTRY,
) -> ImputationService:
    """Change the given fields of a service and publish `service.changed`."""
    changes = service_in.model_dump(exclude_unset=True, exclude={"credential"})
    for required in ("name", "api_type", "base_url", "auth_mode", "is_active", "poll_interval_s", "slug"):
        if required in changes and changes[required] is None:
            del changes[required]
    await _check_unique(session=session, name=changes.get("name"), slug=changes.get("slug"), exclude_id=service.id)
    for name, value in changes.items():
        setattr(service, name, value)
    if "credential" in service_in.model_fields_set:
        credential = service_in.credential
        service.credential_encrypted = None if credential is None else encrypt(fernet, credential.get_secret_value())
    if "base_url" in changes or "api_type" in changes:
        # A new address has no known health yet; check it at the next tick.
        service.health_status, service.last_checked_at, service.failing_since = "unknown", None, None
    await emit_service_changed(session=session, service=service, action="updated", origin=origin)
    return service


async def delete_service(*, session: AsyncSession, service: ImputationService, origin: str = ORIGIN_REGISTRY) -> None:
    """Remove a service with its panels and health log, and publish `service.changed`."""
    await emit_service_changed(session=session, service=service, action="deleted", origin=origin)
    await session.delete(service)
    await session.flush()


async def upsert_from_django(
    *, session: AsyncSession, django_id: int, upsert: DjangoServiceUpsert, fernet: MultiFernet | None
) -> tuple[ImputationService, bool]:
    """Create or update the service Django knows by `django_id` (idempotent); True when it was created."""
    service = await session.scalar(select(ImputationService).where(ImputationService.django_id == django_id))
    if service is None:
        # A service registered here first and since copied into Django is adopted, not duplicated.
        service = await session.scalar(
            select(ImputationService).where(
                func.lower(ImputationService.name) == upsert.name.lower(), ImputationService.django_id.is_(None)
            )
        )
        if service is not None:
            service.django_id = django_id
    # Only what Django sent: fields it does not hold (credential, builds, tags) stay as set here.
    fields = upsert.model_dump(exclude={"panels"}, exclude_unset=True)
    created = service is None
    if service is None:
        service = await create_service(
            session=session,
            service_in=ServiceCreate(**fields),
            fernet=fernet,
            origin=ORIGIN_DJANGO,
            django_id=django_id,
        )
    else:
        changes = {k: v for k, v in fields.items() if k != "slug" or v is not None}
        service = await update_service(
            session=session, service=service, service_in=ServiceUpdate(**changes), fernet=fernet, origin=ORIGIN_DJANGO
        )
    if upsert.panels is not None:
        await _replace_panels(session=session, service=service, panels=upsert.panels)
    return service, created


async def delete_from_django(*, session: AsyncSession, django_id: int) -> bool:
    """Remove the service Django knows by `django_id`; False when there was none (idempotent)."""
    service = await session.scalar(select(ImputationService).where(ImputationService.django_id == django_id))
    if service is None:
        return False
    await delete_service(session=session, service=service, origin=ORIGIN_DJANGO)
    return True


async def _replace_panels(*, session: AsyncSession, service: ImputationService, panels: Sequence[PanelUpsert]) -> None:
    existing = {p.panel_id: p for p in await _panels_of(session=session, service_id=service.id)}
    for panel_in in panels:
        panel = existing.pop(panel_in.panel_id, None)
        if panel is None:
            session.add(ReferencePanel(service_id=service.id, **panel_in.model_dump()))
        else:
            for name, value in panel_in.model_dump(exclude_unset=True).items():
                setattr(panel, name, value)
    # Jobs may refer to a panel Django no longer lists: deactivate it, never delete it.
    for panel in existing.values():
        panel.is_active = False
    await session.flush()


# --- panels -------------------------------------------------------------------------------------------------------


async def _panels_of(*, session: AsyncSession, service_id: int) -> list[ReferencePanel]:
    query = select(ReferencePanel).where(ReferencePanel.service_id == service_id).order_by(ReferencePanel.id)
    return list((await session.scalars(query)).all())


async def list_panels(
    *,
    session: AsyncSession,
    params: PageParams,
    service_id: int | None = None,
    build: str | None = None,
    population: str | None = None,
    is_active: bool | None = None,
) -> Page[PanelRead]:
    """A page of reference panels, filtered."""
    query: Select[Any] = select(ReferencePanel).order_by(ReferencePanel.service_id, ReferencePanel.name)
    if service_id is not None:
        query = query.where(ReferencePanel.service_id == service_id)
    if build is not None:
        query = query.where(ReferencePanel.build == build)
    if population is not None:
        # Populations are matched without regard to case: servers write `eur` where people write `EUR`.
        query = query.where(func.lower(cast(ReferencePanel.populations, Text)).contains(f'"{population.lower()}"'))
    if is_active is not None:
        query = query.where(ReferencePanel.is_active == (true() if is_active else false()))
    rows, total = await paginate(session, query, params)
    return Page[PanelRead](
        items=[PanelRead.model_validate(p) for p in rows], total=total, page=params.page, page_size=params.page_size
    )


async def get_panel(*, session: AsyncSession, panel_id: int) -> ReferencePanel:
    """A reference panel by its registry id; 404 when there is none."""
    panel = await session.get(ReferencePanel, panel_id)
    if panel is None:
        raise NotFound(f"There is no reference panel {panel_id}.", code="panel_not_found")
    return panel


async def create_panel(*, session: AsyncSession, service: ImputationService, panel_in: PanelCreate) -> ReferencePanel:
    """Add a panel to a service; 409 when the service already has that panel id."""
    duplicate = await session.scalar(
        select(ReferencePanel.id).where(
            ReferencePanel.service_id == service.id, ReferencePanel.panel_id == panel_in.panel_id
        )
    )
    if duplicate is not None:
        raise Conflict(f"The service already has a panel with the id '{panel_in.panel_id}'.", code="duplicate_panel")
    panel = ReferencePanel(service_id=service.id, **panel_in.model_dump())
    session.add(panel)
    await session.flush()
    await session.refresh(panel)
    return panel


async def update_panel(*, session: AsyncSession, panel: ReferencePanel, panel_in: PanelUpdate) -> ReferencePanel:
    """Change the given fields of a panel."""
    for name, value in panel_in.model_dump(exclude_unset=True).items():
        if value is None and name in ("name", "build", "populations", "is_active", "parameters"):
            continue
        setattr(panel, name, value)
    await session.flush()
    await session.refresh(panel)
    return panel


async def delete_panel(*, session: AsyncSession, panel: ReferencePanel) -> None:
    """Remove a panel (an admin's explicit choice; sync only ever deactivates)."""
    await session.delete(panel)
    await session.flush()


async def apply_panel_sync(
    *, session: AsyncSession, service: ImputationService, remote: Sequence[RemotePanel], now: datetime
) -> SyncResult:
    """Add new panels, update changed ones and deactivate vanished ones; never delete one."""
    existing = {p.panel_id: p for p in await _panels_of(session=session, service_id=service.id)}
    added, updated, unchanged = [], [], []
    for panel in remote:
        current = existing.pop(panel.panel_id, None)
        if current is None:
            session.add(
                ReferencePanel(
                    service_id=service.id,
                    panel_id=panel.panel_id,
                    name=panel.name,
                    build=panel.build,
                    populations=panel.populations,
                    parameters=panel.parameters,
                    is_active=True,
                )
            )
            added.append(panel.panel_id)
            continue
        wanted = {
            "name": panel.name,
            "populations": panel.populations,
            "parameters": {**current.parameters, **panel.parameters},
            "is_active": True,
        }
        if any(getattr(current, k) != v for k, v in wanted.items()):
            for name, value in wanted.items():
                setattr(current, name, value)
            updated.append(panel.panel_id)
        else:
            unchanged.append(panel.panel_id)
    deactivated = []
    for panel_id, current in existing.items():
        if current.is_active:
            current.is_active = False
            deactivated.append(panel_id)
        else:
            unchanged.append(panel_id)
    service.last_synced_at = now
    await session.flush()
    return SyncResult(
        service_id=service.id,
        added=added,
        updated=updated,
        deactivated=deactivated,
        unchanged=unchanged,
        capabilities=service.capabilities,
    )


async def apply_capability_sync(
    *, session: AsyncSession, service: ImputationService, capabilities: dict[str, Any], now: datetime
) -> SyncResult:
    """Record a WES node's capabilities; a panel is active while the node runs its workflow type (and engine)."""
    service.capabilities = capabilities
    types = capabilities.get("workflow_type_versions", {})
    engines = capabilities.get("workflow_engine_versions", {})
    updated: list[str] = []
    deactivated: list[str] = []
    unchanged: list[str] = []
    for panel in await _panels_of(session=session, service_id=service.id):
        workflow_type = panel.parameters.get("workflow_type", "CWL")
        engine = panel.parameters.get("workflow_engine")
        runnable = workflow_type in types and (engine is None or engine in engines)
        if runnable == panel.is_active:
            unchanged.append(panel.panel_id)
            continue
        panel.is_active = runnable
        (updated if runnable else deactivated).append(panel.panel_id)
    service.last_synced_at = now
    await session.flush()
    return SyncResult(
        service_id=service.id,
        added=[],
        updated=updated,
        deactivated=deactivated,
        unchanged=unchanged,
        capabilities=capabilities,
    )


# --- health -------------------------------------------------------------------------------------------------------


async def due_for_check(
    *, session: AsyncSession, now: datetime, healthy_interval_s: float, unhealthy_interval_s: float
) -> list[ImputationService]:
    """Active services whose next check is due: healthy ones less often than the others."""
    healthy_due = now - timedelta(seconds=healthy_interval_s)
    unhealthy_due = now - timedelta(seconds=unhealthy_interval_s)
    query = (
        select(ImputationService)
        .where(ImputationService.is_active.is_(True))
        .where(
            or_(
                ImputationService.last_checked_at.is_(None),
                (ImputationService.health_status == "healthy") & (ImputationService.last_checked_at <= healthy_due),
                (ImputationService.health_status != "healthy") & (ImputationService.last_checked_at <= unhealthy_due),
            )
        )
        .order_by(ImputationService.last_checked_at.asc().nulls_first())
    )
    return list((await session.scalars(query)).all())


async def record_check(
    *,
    session: AsyncSession,
    service: ImputationService,
    result: ProbeResult,
    checked_at: datetime,
    deactivate_after: timedelta,
    changes: list[tuple[str, dict[str, Any]]],
) -> bool:
    """Log one check and update the service's health; True when the state changed, and then its
    `service.health.changed` event is added to `changes`, which the caller emits with the whole cycle's.

    The caller flushes (a whole cycle's rows go in one batch).
    A service failing without a break for `deactivate_after` is deactivated, logged and published.
    """
    session.add(
        HealthCheck(
            service_id=service.id,
            status=result.status,
            http_status=result.http_status,
            response_time_ms=result.response_time_ms,
            error_message=result.error_message,
            checked_at=checked_at,
        )
    )
    old_status = service.health_status
    service.health_status = result.status
    service.response_time_ms = result.response_time_ms
    service.last_error = result.error_message
    service.last_checked_at = checked_at
    if result.status == "healthy":
        service.failing_since = None
    elif service.failing_since is None:
        service.failing_since = checked_at
    changed = old_status != result.status
    if changed:
        payload = {
            "service_id": service.id,
            "name": service.name,
            "old_status": old_status,
            "new_status": result.status,
            "checked_at": checked_at,
            "error": result.error_message,
        }
        changes.append((SERVICE_HEALTH_CHANGED, payload))
    if (
        service.is_active
        and service.failing_since is not None
        and checked_at - service.failing_since >= deactivate_after
    ):
        service.is_active = False
        logger.warning("service %s (%s) deactivated: failing since %s", service.id, service.name, service.failing_since)
        await emit_service_changed(session=session, service=service, action="updated", origin=ORIGIN_HEALTH)
    # No flush here: a cycle of a thousand checks is written in one batch by the caller.
    return changed


async def health_history(*, session: AsyncSession, service_id: int, params: PageParams) -> Page[HealthLogRead]:
    """A page of a service's health log, newest first."""
    query: Select[Any] = (
        select(HealthCheck)
        .where(HealthCheck.service_id == service_id)
        .order_by(HealthCheck.checked_at.desc(), HealthCheck.id.desc())
    )
    rows, total = await paginate(session, query, params)
    return Page[HealthLogRead](
        items=[HealthLogRead.model_validate(r) for r in rows], total=total, page=params.page, page_size=params.page_size
    )


# --- sync ---------------------------------------------------------------------------------------------------------


async def sync_panels(
    *, session: AsyncSession, service: ImputationService, http: aiohttp.ClientSession, fernet: MultiFernet | None
) -> SyncResult:
    """Read the panels (Michigan) or capabilities (WES) from the service itself and apply them."""
    credential = decrypt(fernet, service.credential_encrypted)
    now = datetime.now(UTC)
    if service.api_type == "michigan":
        _, panels = await read_michigan_panels(http, base_url=service.base_url, credential=credential)
        result = await apply_panel_sync(session=session, service=service, remote=panels, now=now)
    else:
        capabilities = await read_wes_capabilities(http, base_url=service.base_url, credential=credential)
        result = await apply_capability_sync(session=session, service=service, capabilities=capabilities, now=now)
    if result.added or result.updated or result.deactivated:
        await emit_service_changed(session=session, service=service, action="updated", origin=ORIGIN_REGISTRY)
    return result


async def prune_health_log(*, session: AsyncSession, older_than: datetime) -> int:
    """Delete health-log rows checked before `older_than`; return how many."""
    result = await session.execute(delete(HealthCheck).where(HealthCheck.checked_at < older_than))
    return int(getattr(result, "rowcount", 0) or 0)
