"""Endpoints of the notification service: the user's notifications, preferences, webhooks and the WebSocket."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response, WebSocket, WebSocketDisconnect, status

from microservices.common.auth import Principal, TokenVerifier
from microservices.common.db import SessionDep
from microservices.common.errors import AppError
from microservices.common.pagination import Page, PageParamsDep, paginate
from microservices.notification import service
from microservices.notification.dependencies import FernetDep, SettingsDep, UserPrincipal
from microservices.notification.push import PushHub
from microservices.notification.schemas import (
    NotificationRead,
    PreferencesRead,
    PreferencesUpdate,
    ReadAllResult,
    UnreadCount,
    WebhookCreate,
    WebhookCreated,
    WebhookDeliveryRead,
    WebhookRead,
)

router = APIRouter(prefix="/notifications", tags=["notifications"])
socket_router = APIRouter(tags=["notifications"])

# WebSocket close codes: 4401 the token is missing or not valid, 4403 the caller has no notifications.
CLOSE_UNAUTHORIZED = 4401
CLOSE_FORBIDDEN = 4403


@router.get("", response_model=Page[NotificationRead])
async def list_notifications(
    session: SessionDep,
    principal: UserPrincipal,
    params: PageParamsDep,
    unread: Annotated[bool, Query(description="Only unread notifications")] = False,
) -> Page[NotificationRead]:
    """The caller's notifications, newest first."""
    rows, total = await paginate(session, service.list_statement(principal=principal, unread_only=unread), params)
    return Page[NotificationRead](
        items=[NotificationRead.model_validate(r) for r in rows],
        total=total,
        page=params.page,
        page_size=params.page_size,
    )


@router.get("/unread-count", response_model=UnreadCount)
async def unread_count(session: SessionDep, principal: UserPrincipal) -> UnreadCount:
    """How many of the caller's notifications are unread."""
    return UnreadCount(unread=await service.unread_count(session=session, principal=principal))


@router.post("/read-all", response_model=ReadAllResult)
async def read_all(session: SessionDep, principal: UserPrincipal) -> ReadAllResult:
    """Mark every notification of the caller read."""
    return ReadAllResult(marked_read=await service.mark_all_read(session=session, principal=principal))


@router.get("/preferences", response_model=PreferencesRead)
async def get_preferences(session: SessionDep, principal: UserPrincipal) -> PreferencesRead:
    """The caller's channels for every notification type (defaults where nothing was chosen)."""
    assert principal.user_id is not None
    return PreferencesRead(preferences=await service.get_preferences(session=session, user_id=principal.user_id))


@router.put("/preferences", response_model=PreferencesRead)
async def put_preferences(
    session: SessionDep, principal: UserPrincipal, preferences_in: PreferencesUpdate
) -> PreferencesRead:
    """Choose the channels of some notification types."""
    assert principal.user_id is not None
    return PreferencesRead(
        preferences=await service.set_preferences(
            session=session, user_id=principal.user_id, preferences=preferences_in.preferences
        )
    )


@router.post("/webhooks", response_model=WebhookCreated, status_code=status.HTTP_201_CREATED)
async def create_webhook(
    session: SessionDep, principal: UserPrincipal, fernet: FernetDep, settings: SettingsDep, webhook_in: WebhookCreate
) -> WebhookCreated:
    """Register a webhook (a public http(s) URL); its signing secret is in this answer only."""
    assert principal.user_id is not None
    webhook, secret = await service.create_webhook(
        session=session,
        fernet=fernet,
        user_id=principal.user_id,
        webhook_in=webhook_in,
        allow_private=settings.webhook_allow_private_urls,
    )
    return WebhookCreated(**WebhookRead.model_validate(webhook).model_dump(), secret=secret)


@router.get("/webhooks", response_model=Page[WebhookRead])
async def list_webhooks(session: SessionDep, principal: UserPrincipal, params: PageParamsDep) -> Page[WebhookRead]:
    """The caller's webhooks (never their secrets)."""
    assert principal.user_id is not None
    rows, total = await paginate(session, service.webhooks_statement(user_id=principal.user_id), params)
    return Page[WebhookRead](
        items=[WebhookRead.model_validate(r) for r in rows], total=total, page=params.page, page_size=params.page_size
    )


@router.delete("/webhooks/{webhook_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_webhook(session: SessionDep, principal: UserPrincipal, webhook_id: int) -> Response:
    """Remove one of the caller's webhooks."""
    assert principal.user_id is not None
    await service.delete_webhook(session=session, user_id=principal.user_id, webhook_id=webhook_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/webhooks/{webhook_id}/deliveries", response_model=Page[WebhookDeliveryRead])
async def list_deliveries(
    session: SessionDep, principal: UserPrincipal, webhook_id: int, params: PageParamsDep
) -> Page[WebhookDeliveryRead]:
    """The delivery log of one of the caller's webhooks, newest first."""
    assert principal.user_id is not None
    await service.get_webhook(session=session, user_id=principal.user_id, webhook_id=webhook_id)
    rows, total = await paginate(session, service.deliveries_statement(webhook_id=webhook_id), params)
    return Page[WebhookDeliveryRead](
        items=[WebhookDeliveryRead.model_validate(r) for r in rows],
        total=total,
        page=params.page,
        page_size=params.page_size,
    )


@router.post("/{notification_id}/read", response_model=NotificationRead)
async def read_one(session: SessionDep, principal: UserPrincipal, notification_id: int) -> NotificationRead:
    """Mark one notification read."""
    notification = await service.mark_read(session=session, principal=principal, notification_id=notification_id)
    return NotificationRead.model_validate(notification)


@router.delete("/{notification_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_one(session: SessionDep, principal: UserPrincipal, notification_id: int) -> Response:
    """Delete one notification."""
    await service.delete_notification(session=session, principal=principal, notification_id=notification_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


async def _first_message_token(websocket: WebSocket, timeout_s: float) -> str | None:
    try:
        text = await asyncio.wait_for(websocket.receive_text(), timeout=timeout_s)
    except (TimeoutError, WebSocketDisconnect, RuntimeError):
        return None
    with contextlib.suppress(ValueError):
        message: Any = json.loads(text)
        if isinstance(message, dict):
            token = message.get("token")
            return str(token) if token else None
    return text.strip() or None


@socket_router.websocket("/ws/notifications")
async def notifications_socket(websocket: WebSocket, token: str | None = None) -> None:
    """Push each new notification of the caller; the token comes in `?token=` or as the first message."""
    app = websocket.app
    settings = app.state.settings
    await websocket.accept()
    token = token or await _first_message_token(websocket, settings.websocket_auth_timeout_s)
    verifier: TokenVerifier = app.state.token_verifier
    try:
        if not token:
            raise AppError("No token was sent.", code="not_authenticated")
        principal: Principal = await verifier.verify(token)
    except AppError as exc:
        await websocket.close(code=CLOSE_UNAUTHORIZED, reason=exc.message[:120])
        return
    if principal.user_id is None and not principal.is_admin:
        await websocket.close(code=CLOSE_FORBIDDEN, reason="Service accounts have no notifications.")
        return
    hub: PushHub = app.state.push_hub
    hub.register(websocket, principal)
    try:
        await websocket.send_text(json.dumps({"type": "connected", "user_id": principal.user_id}))
        while True:
            try:
                text = await asyncio.wait_for(websocket.receive_text(), timeout=settings.websocket_heartbeat_s)
            except TimeoutError:
                # A heartbeat keeps proxies from closing an idle socket and tells the client the server lives.
                await websocket.send_text('{"type":"ping"}')
                continue
            if text in ("ping", '{"type":"ping"}'):
                await websocket.send_text('{"type":"pong"}')
    except (WebSocketDisconnect, RuntimeError):
        pass
    finally:
        hub.unregister(websocket, principal)
