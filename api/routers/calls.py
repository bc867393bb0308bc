"""Router stub: replaced by the calls work."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
