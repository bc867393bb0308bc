"""The API's Prometheus metrics: ``GET /metrics`` (text format, no auth, not in the OpenAPI
document), HTTP requests by route template, new-call requests by result, and the push
outbox's backlog. docs/metrics.md is the contract of names, types and labels.

Each app has its own ``CollectorRegistry`` (``app.state.metrics``), so that several apps in
one process (tests) do not share counters; with several API processes Prometheus scrapes
each. The backlog gauges are read from PostgreSQL when ``/metrics`` is scraped
(``store.outbox.backlog``: one indexed query), so they are as fresh as the scrape.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import asyncpg
from fastapi import FastAPI, Request, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    gc_collector,
    generate_latest,
    platform_collector,
    process_collector,
)
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from store import outbox, webhooks

log = logging.getLogger(__name__)

disable_created_metrics()  # no ``*_created`` series: one series per counter, as docs/metrics.md lists

PATH = "/metrics"
"""Where the API serves its metrics."""
UNMATCHED = "unmatched"
"""The ``route`` label of a request no route matched (never the raw path: one series per
route template, whatever clients send)."""
CALLS_ROUTE = ("POST", "/v1/calls")
"""The request that places a call (``api/routers/calls.py``): ``ringflow_call_requests_total``."""
BACKLOG_TIMEOUT_S = 2.0
"""How long a scrape waits for the backlog query, seconds (then the gauges are NaN)."""


def call_request_result(status: int) -> str:
    """``ringflow_call_requests_total``'s ``result`` of a ``POST /v1/calls`` answered with
    ``status``: ``created`` (201), ``replayed`` (200: the same Idempotency-Key and body
    again), ``overloaded`` (429, admission control), ``rejected`` (any other 4xx problem),
    ``error`` (5xx)."""
    if status == 201:
        return "created"
    if status == 200:
        return "replayed"
    if status == 429:
        return "overloaded"
    if 400 <= status < 500:
        return "rejected"
    return "error"


class ApiMetrics:
    """The API's instruments in their own ``registry`` (plus the process and GC collectors)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        process_collector.ProcessCollector(registry=self.registry)
        platform_collector.PlatformCollector(registry=self.registry)
        gc_collector.GCCollector(registry=self.registry)
        self.http_requests = Counter(
            "ringflow_http_requests",
            "HTTP requests answered, by method, route template and status",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.http_duration = Histogram(
            "ringflow_http_request_duration_seconds",
            "Time to answer an HTTP request (to the end of its body), by method and route template",
            ["method", "route"],
            registry=self.registry,
        )
        self.call_requests = Counter(
            "ringflow_call_requests",
            "POST /v1/calls by result: created, replayed, rejected, overloaded, error",
            ["result"],
            registry=self.registry,
        )
        self.push_backlog = Gauge(
            "ringflow_push_backlog",
            "Push outbox messages not acknowledged yet (NaN: the database did not answer)",
            registry=self.registry,
        )
        self.push_oldest = Gauge(
            "ringflow_push_oldest_unacked_seconds",
            "Age of the oldest push message not acknowledged yet, seconds (0: none)",
            registry=self.registry,
        )
        self.webhook_backlog = Gauge(
            "ringflow_webhook_backlog",
            "Webhook deliveries not delivered yet, every tenant (NaN: the database did not answer)",
            registry=self.registry,
        )

    def observe(self, method: str, route: str, status: int, duration_s: float) -> None:
        """One HTTP request answered."""
        self.http_requests.labels(method, route, str(status)).inc()
        self.http_duration.labels(method, route).observe(duration_s)
        if (method, route) == CALLS_ROUTE:
            self.call_requests.labels(call_request_result(status)).inc()

    async def refresh_backlog(self, pool: asyncpg.Pool) -> None:
        """Set the push and webhook backlog gauges from PostgreSQL; NaN (and a warning) when it fails."""
        try:
            count, oldest_s, webhooks = await asyncio.wait_for(_backlog(pool), BACKLOG_TIMEOUT_S)
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as e:
            log.warning("metrics: push backlog unavailable (%s)", e)
            self.push_backlog.set(float("nan"))
            self.push_oldest.set(float("nan"))
            self.webhook_backlog.set(float("nan"))
            return
        self.push_backlog.set(count)
        self.push_oldest.set(oldest_s)
        self.webhook_backlog.set(webhooks)

    def exposition(self) -> bytes:
        """Every metric in the text format (``CONTENT_TYPE_LATEST``)."""
        return generate_latest(self.registry)


async def _backlog(pool: asyncpg.Pool) -> tuple[int, float, int]:
    async with pool.acquire() as conn:
        count, oldest_s = await outbox.backlog(conn)
        return count, oldest_s, await webhooks.backlog(conn)


class HttpMetrics:
    """ASGI middleware: every HTTP request's method, route template (``scope["route"]``, set
    by the router; :data:`UNMATCHED` when none matched), status and duration to
    :meth:`ApiMetrics.observe`. An exception counts as a 500 and is re-raised. WebSockets
    and lifespan pass through."""

    def __init__(self, app: ASGIApp, metrics: ApiMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route: Any = scope.get("route")
            template = getattr(route, "path", None) or UNMATCHED
            self.metrics.observe(scope["method"], template, status, time.perf_counter() - start)


def install(app: FastAPI) -> ApiMetrics:
    """Add ``GET /metrics`` (outside the OpenAPI document) and the request middleware to
    ``app``; the metrics are ``app.state.metrics``. Install after the other middleware, so
    that this one sees every answer (a 413 of the body limit too)."""
    metrics = app.state.metrics = ApiMetrics()

    @app.get(PATH, include_in_schema=False)
    async def prometheus_metrics(request: Request) -> Response:
        """Prometheus text exposition of the API's metrics (docs/metrics.md)."""
        await metrics.refresh_backlog(request.app.state.pool)
        return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    app.add_middleware(HttpMetrics, metrics=metrics)
    return metrics
