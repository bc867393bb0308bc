"""Media signaling: a party's SDP offer -> the bridge's SDP answer, in the one media room
of a building call (``docs/media.md``).

``POST /v1/calls/{call_id}/media`` (party bearer token), body ``SdpOffer``
``{sdp, type: "offer"}`` with complete ICE (no trickle) -> ``SdpAnswer``
``{sdp, type: "answer"}``. The API authorises the party from Temporal (the
building call's ``CallCaller`` search attribute, else the listener of a live attempt: the
attempts the call recorded in PostgreSQL, then its ``status`` query) and forwards the
offer to the control API of the bridge node that holds the room (``store/media_nodes.py``:
the registry places a new room on the least loaded live node; no registered node: settings
``media_url``; ``media/server.py``); the bridge creates the room on its first offer and
reports the connection to the workflow.

Problems: 404 unknown call, 403 ``not-a-party``, 409 ``call-not-active`` (call
over, or the listener's attempts are), 422 ``validation`` / ``invalid-sdp``, 503
``media-unavailable`` (bridge down or failing) / ``temporal-unavailable``.

``GET /v1/media/ice-servers`` (party bearer token; ``ice_router``) -> ``IceServers``
``{ice_servers: RTCIceServer[], expires_at}``: the STUN/TURN servers a party puts in its
``RTCPeerConnection``, TURN with an ephemeral credential of that party (``ringflow/ice.py``,
the TURN REST API scheme). Problems: 401 only.
"""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import httpx
from fastapi import APIRouter, Request, Response
from temporalio.api.enums.v1 import WorkflowExecutionStatus
from temporalio.client import Client, WorkflowQueryFailedError
from temporalio.service import RPCError, RPCStatusCode

from api.deps import PartyIdentityDep, PoolDep, SettingsDep, TemporalDep
from api.problems import Problem, not_found, problem_responses
from api.routers.calls import call_not_active, not_a_party
from media.models import PeerOffer, Role, SdpAnswer, SdpOffer
from ringflow.contracts.calls import CallStatus, Phase
from ringflow.contracts.common import Identifier, Party
from ringflow.contracts.errors import ErrCode, problem_slug
from ringflow.contracts.messages import Query
from ringflow.contracts.search import CALL_CALLER
from ringflow.contracts.tenancy import party_key, qualify, unqualified
from ringflow.ice import IceServers, ice_servers
from store import calls as calls_store
from store import media_nodes

router = APIRouter(prefix="/v1/calls", tags=["media"])
ice_router = APIRouter(prefix="/v1/media", tags=["media"])


def _unavailable(what: str, detail: str) -> Problem:
    return Problem(503, f"{what}-unavailable", f"The {what.replace('-', ' ')} is unavailable", detail)


LIVE_PHASES = frozenset({Phase.WAIT, Phase.JOIN, Phase.TALK})
"""Phases of an attempt whose listener may send media (docs/media.md: ringing = early media)."""


async def call_role(client: Client, pool: asyncpg.Pool, call_id: str, party: Party) -> Role:
    """``party``'s role in the media room of building call ``call_id``: the caller (its
    ``CallCaller`` search attribute), or the listener of an attempt of the call whose phase
    is ``wait``, ``join`` or ``talk`` (docs/media.md).

    The workflow must be running (``describe``, answered by the Temporal service). A listener
    is looked up first in the attempts the call recorded in ``pool``
    (:func:`store.calls.listener_phases`, one indexed read): a live phase there is enough,
    as the pushes that tell a listener of its ring, its talk or a re-offer are written in the
    same transaction as that phase; so the re-offers of a bridge failover and a rung
    listener's offer cost no workflow query (a query waits for the worker, the busiest part
    under load). Otherwise the workflow's ``status`` query decides (an attempt not recorded
    yet; a recorded phase the workflow moved on from). An attempt the workflow still sees
    initiating counts once its ``ring`` activity committed (the attempt row says ``wait``).
    Raises 404 (unknown call), 403 ``not-a-party`` (neither), 409 ``call-not-active`` (the
    call is closed, or that listener's attempts are not live), 503 ``temporal-unavailable``."""
    handle = client.get_workflow_handle(call_id)
    try:
        desc = await handle.describe()
        if desc.status != WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_RUNNING:
            raise call_not_active(unqualified(call_id), "the call is over")
        if desc.typed_search_attributes.get(CALL_CALLER) == party.key():
            return Role.CALLER
        if any(p in LIVE_PHASES for p in await calls_store.listener_phases(pool, call_id, party)):
            return Role.LISTENER
        status = await handle.query(Query.STATUS, result_type=CallStatus)
    except RPCError as e:
        if e.status == RPCStatusCode.NOT_FOUND:
            raise not_found("call", unqualified(call_id)) from e
        raise _unavailable("temporal", str(e)) from e
    except WorkflowQueryFailedError as e:
        raise _unavailable("temporal", str(e)) from e
    mine = [a for a in status.attempts if a.listener == party]
    if not mine:
        raise not_a_party(party, unqualified(call_id))
    live = any(a.phase in LIVE_PHASES for a in mine)
    initiating = [a.room_id for a in mine if a.phase == Phase.INITIATE]
    if not live and initiating:
        live = await calls_store.attempt_phase(pool, initiating[-1]) in LIVE_PHASES
    if not live:
        raise call_not_active(
            unqualified(call_id), f"{party.key()} is not being called in {unqualified(call_id)!r} any more"
        )
    return Role.LISTENER


def bridge_http(state: Any) -> httpx.AsyncClient:
    """The API's HTTP client for the bridge nodes' control APIs, kept in the app's ``state``
    (one per event loop; :func:`close_bridge_http` at shutdown): its connections are reused,
    and a new ``httpx.AsyncClient`` per offer cost ~25 ms of CPU (its TLS context), which 20
    re-offers of a failover paid one after another on the API's event loop."""
    loop = asyncio.get_running_loop()
    held: tuple[asyncio.AbstractEventLoop, httpx.AsyncClient] | None = getattr(state, "bridge_http", None)
    if held is None or held[0] is not loop or held[1].is_closed:
        held = (loop, httpx.AsyncClient())
        state.bridge_http = held
    return held[1]


async def close_bridge_http(state: Any) -> None:
    """Close the client of :func:`bridge_http` if ``state`` has one (the app's shutdown)."""
    held = getattr(state, "bridge_http", None)
    if held is not None:
        state.bridge_http = None
        await held[1].aclose()


async def forward_offer(
    http: httpx.AsyncClient, base_url: str, api_key: str, timeout_s: float, call_id: str, offer: PeerOffer
) -> SdpAnswer:
    """POST ``offer`` with ``http`` to room ``call_id`` of the bridge at ``base_url``; the
    bridge's 4xx problems are passed on (422 ``invalid-sdp``), anything else is 503
    ``media-unavailable``."""
    try:
        r = await http.post(
            f"{base_url.rstrip('/')}/rooms/{call_id}/peers",
            json=offer.model_dump(mode="json"),
            headers={"X-API-Key": api_key},
            timeout=timeout_s,
        )
    except httpx.HTTPError as e:
        raise _unavailable("media", f"media bridge at {base_url}: {e!r}") from e
    if r.is_success:
        return SdpAnswer.model_validate_json(r.content)
    if 400 <= r.status_code < 500 and r.headers.get("content-type", "").startswith(
        "application/problem+json"
    ):
        doc = r.json()
        code = doc.get("errCode")
        raise Problem(
            r.status_code,
            problem_slug(str(doc.get("type", ""))) or "media",
            str(doc.get("title", "Media bridge refused the offer")),
            doc.get("detail"),
            ErrCode(code) if code is not None else None,
        )
    raise _unavailable("media", f"media bridge answered {r.status_code}")


@router.post("/{call_id}/media", responses=problem_responses(403, 404, 409, 503))
async def media_offer(
    call_id: Identifier,
    body: SdpOffer,
    request: Request,
    ident: PartyIdentityDep,
    client: TemporalDep,
    pool: PoolDep,
    settings: SettingsDep,
) -> SdpAnswer:
    """Exchange SDP for the party's peer connection in the media room of ``call_id`` (see
    the module docstring for the problems). The call is the token's tenant's: the room and the
    workflow are named by the tenant-qualified call id (issue 9, ``tenancy.qualify``)."""
    party = ident.party
    workflow_id = qualify(ident.tenant_id, call_id)
    role = await call_role(client, pool, workflow_id, party)
    offer = PeerOffer(party=party, role=role, sdp=body.sdp)
    try:
        url, _ = await media_nodes.room_url(
            pool, workflow_id, settings.media_url, settings.media_node_expiry_s, place=True
        )
    except media_nodes.NoMediaNode as e:
        raise _unavailable("media", str(e)) from e
    http = bridge_http(request.app.state)
    return await forward_offer(
        http, url, settings.api_key, settings.media_request_timeout_s, workflow_id, offer
    )


@ice_router.get("/ice-servers")
async def media_ice_servers(ident: PartyIdentityDep, settings: SettingsDep, response: Response) -> IceServers:
    """The ICE servers for the party's next peer connection: ``{"ice_servers": [{"urls":
    [...], "username": ..., "credential": ...}], "expires_at": ...}``, the WebRTC
    ``RTCIceServer[]`` shape (W3C WebRTC section 4.2.1). TURN URLs (``RINGFLOW_TURN_URLS``)
    carry an ephemeral credential of this party, username ``<expiry>:<party key>``, valid
    ``RINGFLOW_TURN_TTL_S`` seconds (draft-uberti-behave-turn-rest-00 section 2.2, coturn
    ``use-auth-secret``); STUN URLs (``RINGFLOW_MEDIA_ICE_SERVERS``) none. Empty list when
    the deployment has neither: host candidates only. Ask again before every new peer
    connection; never cached (``Cache-Control: no-store``). The username's party key is
    tenant-qualified (issue 9: ``acme~user:alice``; the default tenant's as before)."""
    response.headers["Cache-Control"] = "no-store"
    return ice_servers(settings, party_key(ident.tenant_id, ident.party))
