"""Endpoints of the job processor."""

from fastapi import APIRouter

router = APIRouter()
