"""Push hub stub: replaced by the push-channel work (LISTEN/NOTIFY -> WebSocket clients)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI


@asynccontextmanager
async def hub_lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Start the hub for ``app`` (``app.state.hub``) and stop it on exit."""
    yield
