"""Request and response shapes of the notification service."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field


class NotificationRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    user_id: int | None
    type: str
    title: str
    message: str
    link: str | None
    data: dict[str, Any]
    is_read: bool
    read_at: datetime | None
    created_at: datetime


class UnreadCount(BaseModel):
    unread: int


class ReadAllResult(BaseModel):
    marked_read: int


class ChannelChoice(BaseModel):
    in_app: bool
    email: bool
    webhook: bool


class PreferenceRead(ChannelChoice):
    event_type: str
    is_default: bool


class PreferencesRead(BaseModel):
    preferences: list[PreferenceRead]


class PreferencesUpdate(BaseModel):
    """Channels per notification type; types not named keep their current choice."""

    preferences: dict[str, ChannelChoice]


class WebhookCreate(BaseModel):
    url: AnyHttpUrl
    description: str = Field(default="", max_length=200)
    event_types: list[str] = Field(default_factory=list, description="Notification types to send; empty for all")


class WebhookRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    url: str
    description: str
    event_types: list[str]
    is_active: bool
    created_at: datetime


class WebhookCreated(WebhookRead):
    secret: str = Field(description="Signing secret, shown this once only")


class WebhookDeliveryRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    webhook_id: int
    event_type: str
    status: str
    attempts: int
    response_status: int | None
    last_error: str | None
    next_attempt_at: datetime
    created_at: datetime
    delivered_at: datetime | None
