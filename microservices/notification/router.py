"""Endpoints of the notification service."""

from fastapi import APIRouter

router = APIRouter()
