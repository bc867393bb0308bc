"""Router stub: replaced by the directory work."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
