"""``create_app(settings)``: the FastAPI application with its lifespan (asyncpg pool, Temporal client)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from fastapi import FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

from api import docs, metrics, problems
from api.hub import hub_lifespan
from api.problems import Problem, problem_response
from api.routers import (
    availability,
    calls,
    directory,
    events,
    health,
    me,
    media,
    push,
    snapshots,
    tenants,
    tokens,
    webapp,
    webhooks,
)
from ringflow import tracing
from ringflow.contracts.errors import ErrCode
from ringflow.settings import Settings
from ringflow.temporal import connect
from store.db import create_pool

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider


class BodyLimit:
    """Reject request bodies over ``limit`` bytes with a 413 problem, before the app reads them."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        too_large = Problem(
            413,
            "payload-too-large",
            "Request body too large",
            f"at most {self.limit} bytes",
            ErrCode.PAYLOAD_TOO_LARGE,
        )
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await problem_response(too_large)(scope, receive, send)
            return
        received = 0

        async def limited_receive():  # type: ignore[no-untyped-def]
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise _TooLarge
            return message

        try:
            await self.app(scope, limited_receive, send)
        except _TooLarge:
            await problem_response(too_large)(scope, receive, send)


class _TooLarge(Exception):
    pass


def create_app(settings: Settings, *, tracer_provider: TracerProvider | None = None) -> FastAPI:
    """The API for ``settings``. Its lifespan opens the asyncpg pool and the Temporal
    client (``app.state.pool`` / ``app.state.temporal``) and closes them on shutdown.

    Metrics: ``GET /metrics`` (``api/metrics.py``). Traces (``app.state.tracer_provider``):
    ``tracer_provider``, else ``ringflow.tracing.tracer_provider(settings, API)`` (None when
    ``otlp_endpoint`` is unset: no tracing), then flushed at shutdown."""
    own_provider = tracer_provider is None
    provider = tracing.tracer_provider(settings, tracing.API) if own_provider else tracer_provider

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.pool = await create_pool(settings.database_url, settings.db_pool_min, settings.db_pool_max)
        try:
            app.state.temporal = await connect(settings, tracer_provider=provider)
            async with hub_lifespan(app):
                yield
        finally:
            await media.close_bridge_http(app.state)
            await app.state.pool.close()
            if own_provider and provider is not None:
                await asyncio.to_thread(provider.shutdown)

    app = docs.docs_app(
        title="ringflow",
        version="0.1.0",
        summary="Durable call routing for door stations, access panels and campus phones",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.tracer_provider = provider
    problems.install(app)
    docs.install(app)
    app.include_router(tenants.router)
    app.include_router(tokens.router)
    app.include_router(directory.router)
    app.include_router(calls.router)
    app.include_router(push.router)
    app.include_router(media.router)
    app.include_router(media.ice_router)
    app.include_router(me.router)
    app.include_router(availability.router)
    app.include_router(snapshots.router)
    app.include_router(snapshots.calls_router)
    app.include_router(webhooks.router)
    app.include_router(events.router)
    app.include_router(webapp.router)
    app.include_router(health.router)

    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)
    metrics.install(app)  # outermost: it sees every answer
    if provider is not None:
        tracing.instrument_fastapi(app, provider)
    return app
