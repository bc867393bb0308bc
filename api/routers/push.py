"""Router stub: replaced by the push work."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
