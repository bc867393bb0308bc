"""``GET /v1/me/calls/{call_id}/snapshot.jpg``: the visitor snapshot of one of the party's
calls (issue 11 item 4: the call log's faces), for the resident app (party token), and
``GET /v1/calls/{call_id}/snapshot.jpg`` for the backend (API key with ``calls:read``, the
key's tenant's calls only).

The media bridge keeps one JPEG per call, the first picture of the door's early-media
video (``media/snapshot.py``); at a missed call the workflow stores it WITH the call in
PostgreSQL (issue 10 item 4, ``call_snapshots``), so it outlives the bridge node. This route
checks that the token's party is the caller or a rung listener of the call
(``store.calls.get_call``, in the token's tenant: another tenant's call is 404), then serves
the stored picture; a call without one (a live call, an answered one) is asked of the
bridge's control API (``GET /rooms/{room}/snapshot``, the room named by the tenant-qualified
call id, on the node that held the room: ``store/media_nodes.py``, no registered node:
settings ``media_url``; the API key). The answer is ``image/jpeg``, ``Cache-Control:
private, max-age=86400`` (a snapshot never changes).

Problems: 401 (no/bad token, 1011), 403 ``not-a-party`` (1007: not a party of the call),
404 ``not-found`` (1008: unknown call, or the call has no snapshot: a voice call, no media
bridge, or no picture in time), 503 ``media-unavailable`` (the bridge cannot be reached).
"""

from __future__ import annotations

import httpx
from fastapi import APIRouter, Response

from api.deps import PartyIdentityDep, PoolDep, SettingsDep
from api.problems import Problem, not_found, problem_responses
from api.routers.calls import BackendCallsRead
from ringflow.contracts.common import Identifier
from ringflow.contracts.errors import ErrCode
from ringflow.contracts.tenancy import qualify
from store import calls as store
from store import media_nodes

router = APIRouter(prefix="/v1/me", tags=["me"])
calls_router = APIRouter(prefix="/v1/calls", tags=["calls"])


_RESPONSES: dict[int | str, dict[str, object]] = {
    200: {"content": {"image/jpeg": {}}, "description": "The visitor snapshot (JPEG)"},
    **problem_responses(
        403,
        404,
        503,
        descriptions={
            404: "`not-found` (errCode 1008): unknown call, or it has no snapshot",
            503: "`media-unavailable`: the media bridge cannot be reached",
        },
    ),
}


@router.get("/calls/{call_id}/snapshot.jpg", response_class=Response, responses=_RESPONSES)
async def my_call_snapshot(
    call_id: Identifier, ident: PartyIdentityDep, pool: PoolDep, settings: SettingsDep
) -> Response:
    """The visitor snapshot of call ``call_id`` (``image/jpeg``) when the token's party is its
    caller or one of its rung listeners; the problems in the module docstring."""
    party, room = ident.party, qualify(ident.tenant_id, call_id)
    view = await store.get_call(pool, room)
    if view is None:
        raise not_found("call", call_id)
    if party != view.caller and all(a.listener != party for a in view.attempts):
        raise Problem(
            403,
            "not-a-party",
            "Not a party of this call",
            f"{party.key()} is not a party of this call",
            ErrCode.NOT_A_PARTY,
        )
    return await _snapshot(pool, settings, room, call_id)


@calls_router.get("/{call_id}/snapshot.jpg", response_class=Response, responses=_RESPONSES)
async def call_snapshot(
    call_id: Identifier, who: BackendCallsRead, pool: PoolDep, settings: SettingsDep
) -> Response:
    """The backend's view of the visitor snapshot of its tenant's call ``call_id`` (the link of
    the ``call.missed`` webhook, docs/webhooks.md); 404 for another tenant's call."""
    room = qualify(who.tenant_id, call_id)
    if await store.get_call(pool, room) is None:
        raise not_found("call", call_id)
    return await _snapshot(pool, settings, room, call_id)


async def _snapshot(pool: PoolDep, settings: SettingsDep, room: str, call_id: str) -> Response:
    """The stored snapshot of call ``room`` (workflow id), else the bridge's."""
    stored = await store.get_snapshot(pool, room)
    if stored is not None:
        return _jpeg(stored)
    url, _ = await media_nodes.room_url(
        pool, room, settings.media_url, settings.media_node_expiry_s, place=False
    )
    try:
        async with httpx.AsyncClient(base_url=url, timeout=settings.media_request_timeout_s) as http:
            r = await http.get(f"/rooms/{room}/snapshot", headers={"X-API-Key": settings.api_key})
    except httpx.HTTPError as e:
        raise Problem(
            503,
            "media-unavailable",
            "The media is unavailable",
            f"media bridge at {url}: {e!r}",
        ) from e
    if r.status_code == 404:
        raise not_found("snapshot", call_id)
    if r.status_code != 200 or r.headers.get("content-type") != "image/jpeg":
        raise Problem(
            503, "media-unavailable", "The media is unavailable", f"media bridge answered {r.status_code}"
        )
    return _jpeg(r.content)


def _jpeg(data: bytes) -> Response:
    return Response(data, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=86400"})
