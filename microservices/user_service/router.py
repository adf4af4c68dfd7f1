"""Endpoints of the user service."""

from fastapi import APIRouter

router = APIRouter()
