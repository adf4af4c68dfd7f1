"""Endpoints of the service registry."""

from fastapi import APIRouter

router = APIRouter()
