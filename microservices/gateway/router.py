"""Endpoints of the api gateway."""

from fastapi import APIRouter

router = APIRouter()
