"""Endpoints of the file manager."""

from fastapi import APIRouter

router = APIRouter()
