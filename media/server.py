"""``python -m media.server --process``: one media process (a whole bridge) and its internal
control API. ``python -m media.server`` runs a bridge **node** (``media/node.py``): one such
process per core behind one control API with the same routes (issue 13).

The control API listens on ``media_host``:``media_port`` (loopback by default) and
requires the backend key (``X-API-Key`` = settings ``api_key``). ringflow's API calls it
after authorising a party (``api/routers/media.py``), the media activities from the call
workflows (``activities/media.py``). One room per building call, id = ``call_id``
(``docs/media.md``):

- ``POST /rooms/{call_id}/peers`` (``PeerOffer``) -> ``SdpAnswer``; 422 ``invalid-sdp``.
- ``PUT /rooms/{call_id}/talker`` (``TalkerUpdate`` ``{"party": Party | null, "record":
  bool}``) -> ``RoomInfo``; creates the room when no offer came yet; 503
  ``recording-unavailable`` when the recording file cannot be created.
- ``GET /rooms/{call_id}/stats`` -> ``RoomStats`` (404 unknown).
- ``GET /rooms/{call_id}/snapshot`` -> ``image/jpeg``: the visitor snapshot, the first
  picture of the caller's video (``media/snapshot.py``); 404 when there is none.
- ``DELETE /rooms/{call_id}`` -> 200 ``RoomStats``, the final stats (a room closed lately
  answers them again; 404 unknown): close a room now.
- ``GET /rooms`` -> ``list[RoomInfo]``; ``GET /healthz`` (alive), ``GET /readyz`` (Temporal
  reachable; 503 ``not-ready`` otherwise).
- ``GET /metrics``: Prometheus text format, no auth (``media/metrics.py``, docs/metrics.md).
  With ``otlp_endpoint`` set, the control API and the bridge's Temporal signals are traced
  (service ``ringflow-bridge``, ``ringflow/tracing.py``).

Errors are problem+json (``api/problems.py``).
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import uvicorn
from fastapi import FastAPI, Response
from prometheus_client import CONTENT_TYPE_LATEST

from api import problems
from api.deps import BackendAuth
from api.problems import Problem, not_found
from api.routers.health import Check, check_temporal, readiness, run_checks
from media.bridge import Bridge, InvalidSdp, Reporter
from media.metrics import BridgeMetrics
from media.models import PeerOffer, RoomInfo, SdpAnswer, TalkerUpdate
from media.network import MediaNetwork
from media.signals import TemporalReporter
from ringflow import tracing
from ringflow.contracts.errors import ErrCode
from ringflow.contracts.media import RoomStats
from ringflow.contracts.tenancy import QualifiedId
from ringflow.settings import Settings, settings_or_exit
from ringflow.temporal import connect


def create_bridge_app(settings: Settings, reporter: Reporter | None = None) -> FastAPI:
    """The bridge's control API. Its lifespan installs the network policy
    (``MediaNetwork.install``), connects to Temporal for a :class:`TemporalReporter`
    unless ``reporter`` is given, and closes every room on shutdown (``app.state.bridge``).
    Recordings go to ``settings.media_recordings_dir``."""
    network = MediaNetwork.from_settings(settings)
    provider = tracing.tracer_provider(settings, tracing.BRIDGE)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        network.install()
        rep = (
            reporter
            if reporter is not None
            else TemporalReporter(await connect(settings, tracer_provider=provider))
        )
        bridge = app.state.bridge = Bridge(
            network,
            rep,
            settings.media_connect_timeout_s,
            settings.media_disconnect_grace_s,
            settings.media_recordings_dir,
        )
        try:
            yield
        finally:
            await bridge.close()
            if provider is not None:
                await asyncio.to_thread(provider.shutdown)

    app = FastAPI(title="ringflow media bridge", version="0.2.0", lifespan=lifespan)
    app.state.settings = settings
    problems.install(app)

    def bridge() -> Bridge:
        b: Bridge = app.state.bridge
        return b

    metrics = app.state.metrics = BridgeMetrics(bridge)

    @app.get("/metrics", include_in_schema=False)
    async def prometheus_metrics() -> Response:
        """Prometheus text exposition of the bridge's metrics (docs/metrics.md)."""
        return Response(await metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    @app.post("/rooms/{call_id}/peers", dependencies=[BackendAuth])
    async def offer(call_id: QualifiedId, body: PeerOffer) -> SdpAnswer:
        """Answer a party's offer in room ``call_id`` (created if new)."""
        try:
            return await bridge().offer(call_id, body)
        except InvalidSdp as e:
            raise Problem(422, "invalid-sdp", "Invalid SDP offer", str(e), ErrCode.VALIDATION) from e

    @app.get("/rooms/{call_id}/snapshot", dependencies=[BackendAuth])
    async def snapshot(call_id: QualifiedId) -> Response:
        """The visitor snapshot of room ``call_id`` (``image/jpeg``, ``media/snapshot.py``),
        also after the room closed; 404 ``not-found`` when it has none."""
        data = await asyncio.to_thread(bridge().snapshots.load, call_id)
        if data is None:
            raise not_found("snapshot", call_id)
        return Response(data, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=86400"})

    @app.put("/rooms/{call_id}/talker", dependencies=[BackendAuth])
    async def talker(call_id: QualifiedId, body: TalkerUpdate) -> RoomInfo:
        """Set room ``call_id``'s talker (and recording); routes follow at once."""
        try:
            return await bridge().set_talker(call_id, body)
        except OSError as e:
            raise Problem(503, "recording-unavailable", "The recording cannot be written", str(e)) from e

    @app.get("/rooms/{call_id}/stats", dependencies=[BackendAuth])
    async def stats(call_id: QualifiedId) -> RoomStats:
        """Room ``call_id``'s traffic per party so far."""
        found = await bridge().stats(call_id)
        if found is None:
            raise not_found("room", call_id)
        return found

    @app.delete("/rooms/{call_id}", dependencies=[BackendAuth])
    async def close_room(call_id: QualifiedId) -> RoomStats:
        """Close room ``call_id`` and its peers (no signals); its final stats."""
        final = await bridge().close_room(call_id)
        if final is None:
            raise not_found("room", call_id)
        return final

    @app.get("/rooms", dependencies=[BackendAuth])
    async def rooms() -> list[RoomInfo]:
        """The live rooms, their talkers and their peers' connection states."""
        return bridge().info()

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        """Liveness (``{"status": "ok"}``)."""
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz() -> dict[str, Any]:
        """Readiness: Temporal answers within ``CHECK_TIMEOUT_S`` (the bridge signals joins
        and watches room ends there; ``api/routers/health.py``). 200 ``{"status": "ready",
        "checks": {...}}``, else 503 problem ``not-ready``."""
        checks: dict[str, Check] = {}
        rep = bridge().reporter
        if isinstance(rep, TemporalReporter):
            checks["temporal"] = lambda: check_temporal(rep.client)
        return readiness(await run_checks(checks))

    if provider is not None:
        tracing.instrument_fastapi(app, provider)
    return app


def serve(settings: Settings, log_level: str = "info") -> None:
    """Run the bridge in this process until SIGTERM/SIGINT (rooms closed on the way out).
    Raises ``SystemExit`` (uvicorn) when the port is taken or Temporal is unreachable."""
    uvicorn.run(
        create_bridge_app(settings),
        host=settings.media_host,
        port=settings.media_port,
        log_level=log_level,
        timeout_graceful_shutdown=10,
    )


def main(argv: list[str]) -> None:
    """``python -m media.server [--process]``: a node (default) or one media process of a node.
    Exits 1 with one line on invalid settings (a dev secret in production)."""
    settings = settings_or_exit()
    if "--process" in argv:
        serve(settings)
    else:
        from media.node import serve_node  # the node imports no aiortc itself

        serve_node(settings)


if __name__ == "__main__":
    main(sys.argv[1:])
