"""``WebSocket /v1/push?token=...``: the push channel of a device or resident app.

Server -> client frames (``ringflow/contracts/push.py``): every outbox message as
``{"id","type","call_id","room_id","at","payload"}``, in seq order; unacknowledged
messages are sent again on the next connection, so clients de-duplicate by ``id``.
Replies to actions have no ``id``: ``{"result": ActionResult, "action", "call_id"}`` or
``{"error": problem, "action", "call_id"}`` (the REST action's problem document).

Client -> server frames (JSON text, at most :data:`MAX_FRAME_BYTES`):
``{"ack": [ids]}`` marks messages delivered (only the party's own);
``{"action": "answer"|"reject"|"pass"|"hang_up", "call_id": ...}`` does what the REST action does.

Close codes: 4401 bad/expired token (reason says which); 1003 a frame that is not
JSON or not one of the frames above; 1009 a frame over :data:`MAX_FRAME_BYTES`.
A frame that closes the socket changes nothing.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from pydantic import Field, ValidationError, model_validator

from api.deps import checked_identity
from api.hub import Hub, Session
from api.problems import Problem
from api.routers.calls import PartyAction, party_action
from ringflow.contracts.common import Contract, Identifier, Party
from ringflow.contracts.tenancy import party_key
from store import outbox

log = logging.getLogger(__name__)

router = APIRouter(tags=["push"])

MAX_FRAME_BYTES = 16 * 1024
"""Largest client frame accepted, bytes (UTF-8)."""

CLOSE_UNAUTHORIZED = 4401
CLOSE_UNSUPPORTED = 1003
CLOSE_TOO_BIG = 1009


class ClientFrame(Contract):
    """A client frame: exactly one of ``ack`` (message ids) and ``action`` (+ ``call_id``)."""

    ack: list[str] | None = Field(None, max_length=500)
    action: PartyAction | None = None
    call_id: Identifier | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> ClientFrame:
        if (self.ack is None) == (self.action is None):
            raise ValueError("give exactly one of ack and action")
        if self.action is not None and self.call_id is None:
            raise ValueError("an action needs call_id")
        return self


class _Close(Exception):
    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason[:120]  # close reasons are at most 123 bytes


def parse_frame(message: Mapping[str, Any]) -> ClientFrame:
    """The client frame in an ASGI ``websocket.receive`` message. Raises ``_Close``."""
    data = message.get("text")
    raw = data.encode() if data is not None else (message.get("bytes") or b"")
    if len(raw) > MAX_FRAME_BYTES:
        raise _Close(CLOSE_TOO_BIG, f"frame larger than {MAX_FRAME_BYTES} bytes")
    try:
        doc = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise _Close(CLOSE_UNSUPPORTED, f"malformed JSON: {e}") from e
    try:
        return ClientFrame.model_validate(doc)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "frame"
        raise _Close(CLOSE_UNSUPPORTED, f"invalid frame: {where}: {first.get('msg', '')}") from e


async def _serve(websocket: WebSocket, session: Session, party: Party, tenant_id: str) -> None:
    """Read client frames until the client leaves or a bad frame closes the socket."""
    hub: Hub = session.hub
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return
        frame = parse_frame(message)
        if frame.ack is not None:
            await outbox.ack(hub.pool, session.recipient, frame.ack)
            session.acked(frame.ack)
            continue
        assert frame.action is not None and frame.call_id is not None
        reply: dict[str, Any] = {"action": frame.action, "call_id": frame.call_id}
        try:
            result = await party_action(
                websocket.app.state.temporal, frame.call_id, frame.action, party, tenant_id
            )
            reply["result"] = result.model_dump(mode="json")
        except Problem as p:
            reply["error"] = p.body()
        except Exception:  # a bug or Temporal outage must not drop the push channel
            log.exception("push: action %s on %s failed", frame.action, frame.call_id)
            reply["error"] = Problem(500, "internal", "Internal error").body()
        await session.send(reply)


@router.websocket("/v1/push")
async def push(websocket: WebSocket, token: str = "") -> None:
    """The party's push channel (see the module docstring for frames and close codes). The
    session reads only the outbox rows of the token's tenant's party (the recipient is the
    tenant-qualified party key, issue 9); a token of a disabled tenant is closed with 4401."""
    await websocket.accept()
    try:
        ident = await checked_identity(websocket.app.state, token)
    except Problem as p:
        await websocket.close(CLOSE_UNAUTHORIZED, p.detail or p.title)
        return
    party = ident.party
    hub: Hub = websocket.app.state.hub
    async with hub.session(party_key(ident.tenant_id, party), websocket) as session:
        assert session.pump_task is not None
        reader = asyncio.create_task(_serve(websocket, session, party, ident.tenant_id))
        try:
            await asyncio.wait({reader, session.pump_task}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            reader.cancel()
    # the pump only ends on a socket error: the client is gone, nothing to close
    if reader.done() and not reader.cancelled():
        exc = reader.exception()
        if isinstance(exc, _Close):
            await websocket.close(exc.code, exc.reason)
        elif exc is not None and not isinstance(exc, WebSocketDisconnect):
            raise exc
