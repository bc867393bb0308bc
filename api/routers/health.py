"""Health: ``GET /healthz`` (alive) and ``GET /readyz`` (ready to serve).

- ``/healthz`` checks nothing but the process: 200 ``{"status": "ok"}`` while it serves
  requests (a liveness probe; restarting the process is the only cure it suggests).
- ``/readyz`` checks what a request needs, concurrently, each within
  :data:`CHECK_TIMEOUT_S`: ``postgres`` (``SELECT 1`` on the asyncpg pool), ``temporal``
  (the frontend's gRPC health check) and, when ``media_enabled``, ``bridge`` (a live node
  in the media node registry, or with none registered the media bridge's ``GET /healthz``
  at ``media_url``). 200 ``{"status": "ready", "checks":
  {name: {"ok": true, "seconds": 0.002}}}``, or 503 ``application/problem+json`` of the
  stable type ``not-ready`` whose ``checks`` member has every check's result and the
  ``error`` of each failed one (``Retry-After: 5``). Never a 500, never longer than
  :data:`CHECK_TIMEOUT_S` plus a little (a readiness probe that hangs is a failed one).

Used by the docker-compose health checks (issue 12 item 4) and load balancers: an API
replica that cannot reach PostgreSQL or Temporal drops out of rotation until they return.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import timedelta
from typing import Any

import asyncpg
import httpx
from fastapi import APIRouter
from temporalio.client import Client

from api.deps import PoolDep, SettingsDep, TemporalDep
from api.problems import Problem, problem_responses
from store import media_nodes

router = APIRouter(tags=["health"])

CHECK_TIMEOUT_S = 2.0
"""How long each readiness check may take, seconds; a slower dependency counts as down."""

RETRY_AFTER_S = 5
"""``Retry-After`` of a 503 ``not-ready``, seconds (the compose health check's interval)."""

Check = Callable[[], Awaitable[None]]
"""A readiness check: returns when the dependency answers, raises when it does not."""


async def check_postgres(pool: asyncpg.Pool, timeout: float = CHECK_TIMEOUT_S) -> None:
    """``SELECT 1`` on a connection of ``pool`` within ``timeout`` seconds. Raises
    ``OSError`` / ``asyncpg`` errors (server down, refused) or ``TimeoutError``. A dead
    idle connection is dropped by asyncpg on its error, so the next check reconnects."""
    async with pool.acquire(timeout=timeout) as conn:
        await conn.fetchval("SELECT 1", timeout=timeout)


async def check_temporal(client: Client, timeout: float = CHECK_TIMEOUT_S) -> None:
    """The Temporal frontend's gRPC health check (``grpc.health.v1``, the service the
    server reports as ``WorkflowService``) within ``timeout`` seconds, no retries. Raises
    ``temporalio.service.RPCError`` (unreachable, not serving) or ``RuntimeError`` when the
    server answers that it is not serving."""
    if not await client.service_client.check_health(timeout=timedelta(seconds=timeout)):
        raise RuntimeError("Temporal frontend reports NOT_SERVING")


async def check_http(url: str, timeout: float = CHECK_TIMEOUT_S) -> None:
    """``GET url`` answers 2xx within ``timeout`` seconds (the media bridge's ``/healthz``).
    Raises ``httpx.HTTPError`` (refused, timeout) or ``RuntimeError`` on another status."""
    async with httpx.AsyncClient(timeout=timeout) as http:
        response = await http.get(url)
    if not response.is_success:
        raise RuntimeError(f"GET {url}: HTTP {response.status_code}")


async def _run(check: Check, timeout: float) -> dict[str, Any]:
    started = time.monotonic()
    try:
        # The outer bound catches a check whose own timeouts do not cover every step.
        await asyncio.wait_for(check(), timeout + 0.5)
    except Exception as e:  # any failure is "not ready", never a 500
        error = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
        return {"ok": False, "seconds": round(time.monotonic() - started, 3), "error": error[:500]}
    return {"ok": True, "seconds": round(time.monotonic() - started, 3)}


async def run_checks(
    checks: Mapping[str, Check], timeout: float = CHECK_TIMEOUT_S
) -> dict[str, dict[str, Any]]:
    """Run ``checks`` concurrently, each bounded by ``timeout`` seconds (plus 0.5 s): per
    name ``{"ok": bool, "seconds": float, "error": str (failed only)}``. Never raises
    (``Exception``s of a check are its ``error``)."""
    results = await asyncio.gather(*(_run(check, timeout) for check in checks.values()))
    return dict(zip(checks, results, strict=True))


def readiness(checks: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The ``/readyz`` answer for ``checks`` (from :func:`run_checks`): the 200 document
    ``{"status": "ready", "checks": ...}`` when every check is ok. Raises the 503
    :class:`~api.problems.Problem` ``not-ready`` (member ``checks``; ``detail`` names the
    failed checks and their errors) otherwise."""
    failed = {name: result for name, result in checks.items() if not result["ok"]}
    if failed:
        raise Problem(
            503,
            "not-ready",
            "Not ready",
            "; ".join(f"{name}: {result['error']}" for name, result in failed.items()),
            headers={"Retry-After": str(RETRY_AFTER_S)},
            checks=checks,
        )
    return {"status": "ready", "checks": checks}


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """Liveness: the process serves requests (``{"status": "ok"}``); checks no dependency."""
    return {"status": "ok"}


@router.get(
    "/readyz",
    responses=problem_responses(
        descriptions={503: "Not ready (``not-ready``): ``checks`` has every check's result and error"}
    ),
)
async def readyz(settings: SettingsDep, pool: PoolDep, temporal: TemporalDep) -> dict[str, Any]:
    """Readiness: PostgreSQL, Temporal and (``media_enabled``) the media bridge answer,
    each within ``CHECK_TIMEOUT_S`` seconds. 200 ``{"status": "ready", "checks": {...}}``;
    503 problem ``not-ready`` with every check's result otherwise."""
    checks: dict[str, Check] = {
        "postgres": lambda: check_postgres(pool),
        "temporal": lambda: check_temporal(temporal),
    }
    if settings.media_enabled:
        checks["bridge"] = lambda: check_bridge(pool, settings.media_url, settings.media_node_expiry_s)
    return readiness(await run_checks(checks))


async def check_bridge(pool: asyncpg.Pool, media_url: str, expiry_s: float) -> None:
    """With registered bridge nodes (``store/media_nodes.py``): at least one is live (its
    heartbeat younger than ``expiry_s`` seconds); else the bridge at ``media_url`` answers
    ``GET /healthz``. Raises ``RuntimeError`` / ``httpx.HTTPError``."""
    nodes = await media_nodes.live_nodes(pool, expiry_s)
    if nodes is None:
        await check_http(media_url.rstrip("/") + "/healthz")
    elif not nodes:
        raise RuntimeError("no registered media bridge node is live")
