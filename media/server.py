"""``python -m media.server``: the bridge process and its internal control API.

The control API listens on ``media_host``:``media_port`` (loopback by default) and
requires the backend key (``X-API-Key`` = settings ``api_key``); only ringflow's API
calls it, after authorising the party (``api/routers/media.py``):

- ``POST /rooms/{room_id}/peers`` (``PeerOffer``) -> ``SdpAnswer``; 422
  ``invalid-sdp``, 409 ``room-conflict``.
- ``DELETE /rooms/{room_id}`` -> 204 (404 when unknown): close a room now.
- ``GET /rooms`` -> ``list[RoomInfo]``; ``GET /healthz``.

Errors are problem+json (``api/problems.py``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import uvicorn
from fastapi import FastAPI, Response

from api import problems
from api.deps import BackendAuth
from api.problems import Problem, not_found
from media.bridge import Bridge, InvalidSdp, Reporter, RoomConflict
from media.models import PeerOffer, RoomInfo, SdpAnswer
from media.network import MediaNetwork
from media.signals import TemporalReporter
from ringflow.contracts.common import Identifier
from ringflow.contracts.errors import ErrCode
from ringflow.settings import Settings, get_settings
from ringflow.temporal import connect


def create_bridge_app(settings: Settings, reporter: Reporter | None = None) -> FastAPI:
    """The bridge's control API. Its lifespan installs the network policy
    (``MediaNetwork.install``), connects to Temporal for a :class:`TemporalReporter`
    unless ``reporter`` is given, and closes every room on shutdown (``app.state.bridge``)."""
    network = MediaNetwork.from_settings(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        network.install()
        rep = reporter if reporter is not None else TemporalReporter(await connect(settings))
        bridge = app.state.bridge = Bridge(
            network, rep, settings.media_connect_timeout_s, settings.media_disconnect_grace_s
        )
        try:
            yield
        finally:
            await bridge.close()

    app = FastAPI(title="ringflow media bridge", version="0.1.0", lifespan=lifespan)
    app.state.settings = settings
    problems.install(app)

    @app.post("/rooms/{room_id}/peers", dependencies=[BackendAuth])
    async def offer(room_id: Identifier, body: PeerOffer) -> SdpAnswer:
        """Answer a party's offer in ``room_id`` (created by its first offer)."""
        bridge: Bridge = app.state.bridge
        try:
            return await bridge.offer(room_id, body)
        except InvalidSdp as e:
            raise Problem(422, "invalid-sdp", "Invalid SDP offer", str(e), ErrCode.VALIDATION) from e
        except RoomConflict as e:
            raise Problem(409, "room-conflict", "Room belongs to another call", str(e)) from e

    @app.delete("/rooms/{room_id}", status_code=204, dependencies=[BackendAuth])
    async def close_room(room_id: Identifier) -> Response:
        """Close ``room_id`` and its peers (no signals)."""
        if not await app.state.bridge.close_room(room_id):
            raise not_found("room", room_id)
        return Response(status_code=204)

    @app.get("/rooms", dependencies=[BackendAuth])
    async def rooms() -> list[RoomInfo]:
        """The live rooms and their peers' connection states."""
        return app.state.bridge.info()

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        """Liveness (``{"status": "ok"}``)."""
        return {"status": "ok"}

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


if __name__ == "__main__":
    serve(get_settings())
