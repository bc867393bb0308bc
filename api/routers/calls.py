"""Calls: place a building call, read it and its history, and the parties' actions.

The API starts ``BuildingCallWorkflow`` and sends it updates by NAME (docs/design.md: the
API never imports workflow code nor decides call logic); the call history comes
from PostgreSQL (``store/calls.py``), written by the workflows' ``record`` activity.

- ``POST /v1/calls`` (backend ``X-API-Key``, or a device's bearer token for its own
  calls) with ``Idempotency-Key``: the workflow id, so a double press starts ONE call.
- ``GET /v1/calls/{call_id}``, ``GET /v1/calls`` (history filters).
- ``POST /v1/calls/{id}/answer|reject|pass|hang-up|cancel`` (party token) and
  ``/force-hang-up`` (backend): workflow updates returning ``ActionResult``;
  :func:`party_action` is shared with the WebSocket push channel.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal, TypeVar

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from pydantic import AwareDatetime, BaseModel
from temporalio.api.enums.v1 import WorkflowExecutionStatus
from temporalio.client import (
    Client,
    RPCError,
    WorkflowExecutionDescription,
    WorkflowHandle,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
from temporalio.common import SearchAttributePair, TypedSearchAttributes, WorkflowIDReusePolicy
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError
from temporalio.service import RPCStatusCode

from api.admission import AdmissionDep
from api.deps import (
    Access,
    PartyIdentityDep,
    PoolDep,
    Principal,
    SettingsDep,
    TemporalDep,
    backend_or_party,
    require_scopes,
)
from api.problems import Problem, not_found, problem_responses
from api.timeline_svg import render_timeline_svg
from ringflow.contracts.calls import (
    ActionResult,
    AnswerInput,
    CallCreate,
    CallView,
    CustomActionAck,
    CustomActionAckRequest,
    CustomActionInput,
    CustomActionRequest,
    CustomActionResult,
    EscalationInput,
    ForceHangUpInput,
    HangUpInput,
    PassInput,
    Phase,
    RejectInput,
)
from ringflow.contracts.common import Contract, Identifier, Party, PartyKind
from ringflow.contracts.errors import ErrCode
from ringflow.contracts.messages import REJECTION_ERR_CODES, Rejection, Update, WorkflowType
from ringflow.contracts.policies import RingStrategy
from ringflow.contracts.search import CALL_CALLEES, CALL_CALLER, CALL_PHASE, CALL_UNIT
from ringflow.contracts.tenancy import DEFAULT_SITE, DEFAULT_TENANT, Scope, qualify, unqualified
from ringflow.settings import Settings
from store import calls as store
from store import directory

router = APIRouter(prefix="/v1/calls", tags=["calls"])

CallsRead = Annotated[Access, Depends(backend_or_party(Scope.CALLS_READ))]
"""A party token, or an API key with ``calls:read``; queries are filtered by its tenant."""
CallsWrite = Annotated[Access, Depends(backend_or_party(Scope.CALLS_WRITE))]
"""A party token, or an API key with ``calls:write``."""
BackendCallsRead = Annotated[Principal, Depends(require_scopes(Scope.CALLS_READ))]
BackendCallsWrite = Annotated[Principal, Depends(require_scopes(Scope.CALLS_WRITE))]

R = TypeVar("R", bound=BaseModel)

WORKFLOW = WorkflowType.BUILDING_CALL
"""The building call's workflow type (``workflows/``), started by name."""

UPDATE_RPC_TIMEOUT = timedelta(seconds=30)
"""How long an action waits for the workflow to accept or reject it before 503."""

# The workflows' typed update rejections -> problems (status, slug, title); the errCode is
# the rejection's own (REJECTION_ERR_CODES).
_REJECTIONS: dict[Rejection, tuple[int, str, str]] = {
    Rejection.ANSWERED_BY_ANOTHER: (409, "answered-by-another", "Answered by another party"),
    Rejection.CALL_NOT_ACTIVE: (409, "call-not-active", "The call is not in a phase for this action"),
    Rejection.NOT_A_PARTY: (403, "not-a-party", "Not a party of this call"),
    Rejection.UNKNOWN_ACTION: (422, "unknown-action", "The calling device does not offer this action"),
    Rejection.UNKNOWN_ACTION_ID: (404, "not-found", "Unknown action"),
    Rejection.ACTION_SETTLED: (409, "action-settled", "The action was already acknowledged or timed out"),
    Rejection.FOLLOW_UP_CLOSED: (409, "follow-up-closed", "The missed call's follow-up window is not open"),
    Rejection.FOLLOW_UP_NOT_ALLOWED: (
        403,
        "follow-up-not-allowed",
        "The policy does not allow this after a miss",
    ),
}


# ---------------------------------------------------------------- models


class CallCreated(Contract):
    """``POST /v1/calls`` answer: the call id (= Idempotency-Key), its phase, related URLs."""

    call_id: str
    phase: Phase
    links: dict[str, str]


class CallList(BaseModel):
    """``GET /v1/calls``: calls newest first (without attempts and events) and the cursor
    of the next page (None on the last page)."""

    items: list[CallView]
    next_cursor: str | None = None


# ---------------------------------------------------------------- helpers


def not_a_party(party: Party, call_id: str) -> Problem:
    """403 ``not-a-party`` (errCode 1007)."""
    return Problem(
        403,
        "not-a-party",
        "Not a party of this call",
        f"{party.key()} is not in call {call_id!r}",
        ErrCode.NOT_A_PARTY,
    )


def call_not_active(call_id: str, detail: str | None = None) -> Problem:
    """409 ``call-not-active`` (errCode 1006): the call has ended or the action does not fit its phase."""
    return Problem(
        409,
        "call-not-active",
        "The call is not in a phase for this action",
        detail or f"call {call_id!r} has ended",
        ErrCode.CALL_NOT_ACTIVE,
    )


def request_hash(body: CallCreate) -> str:
    """sha256 (hex) of the canonical body: every field (defaults included), JSON with sorted
    keys and no spaces, so the same request hashes the same however it was spelled. A
    ``site_id`` left out is left out of the hash (a retry across the upgrade that added it
    hashes as before)."""
    exclude = {"site_id"} if body.site_id is None else set()
    canonical = json.dumps(
        body.model_dump(mode="json", exclude=exclude), sort_keys=True, separators=(",", ":")
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def _links(settings: Settings, call_id: str, tenant_id: str) -> dict[str, str]:
    base = f"/v1/calls/{call_id}"
    return {
        "self": base,
        "answer": f"{base}/answer",
        "reject": f"{base}/reject",
        "pass": f"{base}/pass",
        "hang_up": f"{base}/hang-up",
        "cancel": f"{base}/cancel",
        "temporal_ui": temporal_ui_url(settings, qualify(tenant_id, call_id)),
    }


def temporal_ui_url(settings: Settings, call_id: str) -> str:
    """The call's page in the Temporal UI (``call_id``: the workflow id, tenant-qualified)."""
    return f"{settings.temporal_ui_url}/namespaces/{settings.temporal_namespace}/workflows/{call_id}"


async def _describe(handle: WorkflowHandle[Any, Any]) -> WorkflowExecutionDescription | None:
    try:
        return await handle.describe()
    except RPCError as e:
        if e.status == RPCStatusCode.NOT_FOUND:
            return None
        raise


def _closed(desc: WorkflowExecutionDescription) -> bool:
    return desc.status not in (None, WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_RUNNING)


MEMO_KEY = "call"
"""The building call's memo field: ``{"request_hash", "caller", "unit_id", "room_type",
"strategy"}`` (calls started before it have these as separate fields)."""


async def _call_memo(desc: WorkflowExecutionDescription) -> dict[str, Any]:
    """The call's memo as one dict, whichever shape it was started with."""
    memo = await desc.memo()
    nested = memo.get(MEMO_KEY)
    return nested if isinstance(nested, dict) else dict(memo)


async def _check_parties(pool: Any, body: CallCreate, tenant: str) -> tuple[RingStrategy, str | None]:
    """Pre-start checks (reference section 1, what the API can answer at once), in tenant
    ``tenant``: the caller exists and, if a device, holds a valid VoIP token (else errCode 13);
    the unit (of ``body.site_id``, else the caller device's site, else the default site),
    callees and fallback user exist (404). Returns (the ring strategy the call will use, the
    unit's site or None)."""
    site_id: str | None = None
    async with pool.acquire() as conn:
        if body.caller.kind is PartyKind.DEVICE:  # one read: exists, its site, its VoIP token
            device = await directory.find_device(conn, body.caller.id, tenant=tenant)
            if device is None:
                raise _unknown_party(body.caller, "caller")
            site_id = device.site_id
            problem = device.voip_token_problem(datetime.now(UTC))
            if problem is not None:
                raise Problem(
                    403,
                    "voip-token-invalid",
                    "The caller's VoIP token is invalid",
                    problem,
                    ErrCode.VOIP_TOKEN_INVALID,
                )
        else:
            await _require_party(conn, body.caller, "caller", tenant)
        strategy = body.policy.strategy if body.policy else RingStrategy.SEQUENTIAL
        if body.unit_id is not None:
            site_id = body.site_id or site_id or DEFAULT_SITE
            unit = await directory.find_unit(conn, body.unit_id, tenant=tenant, site=site_id)
            if unit is None:
                raise not_found("unit", body.unit_id)
            if body.policy is None:
                strategy = unit.policy.strategy
        else:
            site_id = None
        for callee in body.callees or []:
            await _require_party(conn, callee, "callee", tenant)
        if body.policy is not None and body.policy.fallback_user_id is not None:
            await _require_party(
                conn, Party(kind=PartyKind.USER, id=body.policy.fallback_user_id), "fallback", tenant
            )
    return strategy, site_id


async def _require_party(conn: Any, party: Party, role: str, tenant: str) -> None:
    if party.kind is PartyKind.DEVICE:
        found = await directory.find_device(conn, party.id, tenant=tenant) is not None
    else:
        found = await directory.find_user(conn, party.id, tenant=tenant) is not None
    if not found:
        raise _unknown_party(party, role)


def _unknown_party(party: Party, role: str) -> Problem:
    """404 ``not-found`` for ``party`` named as ``role`` (caller, callee, fallback)."""
    return Problem(
        404,
        "not-found",
        f"Unknown {party.kind.value}",
        f"{role}: no {party.kind.value} {party.id!r}",
        ErrCode.UNKNOWN_RESOURCE,
        kind=party.kind.value,
    )


# ---------------------------------------------------------------- place a call


@router.post(
    "",
    status_code=201,
    response_model=CallCreated,
    responses={
        200: {"model": CallCreated, "description": "The same call again: a retry with the same key and body"},
        **problem_responses(
            403,
            404,
            429,
            descriptions={409: "``idempotency-conflict`` (errCode 1009): the key was used with another body"},
        ),
    },
)
async def place_call(
    body: CallCreate,
    idempotency_key: Annotated[
        Identifier,
        Header(description="The call id; a retry with the same key and body returns the same call"),
    ],
    auth: CallsWrite,
    response: Response,
    settings: SettingsDep,
    pool: PoolDep,
    client: TemporalDep,
    admission: AdmissionDep,
) -> CallCreated:
    """Ring ``unit_id``'s residents (or ``callees``) from ``caller``: starts one
    ``BuildingCallWorkflow`` whose id is the ``Idempotency-Key`` (= ``call_id``).

    201 + ``Location`` for a new call; 200 with the same call for a retry with the same
    key and body; 409 ``idempotency-conflict`` (errCode 1009) for the same key with another
    body. 404 unknown caller/unit/callee, 403 ``voip-token-invalid`` (errCode 13,
    reference 1(2)), 403 ``not-a-party`` when a device token places a call for another
    caller, 422 malformed body or key. 429 ``overloaded`` (errCode 1012) + ``Retry-After``
    when a new call is above the admission rate (``api/admission.py``; a replay is never
    refused). Nothing is started on any error.

    Tenancy (issue 9): the key's (or token's) tenant; the workflow id is the call id qualified
    by it (``tenancy.qualify``: the default tenant's is the call id itself), so two tenants may
    use the same ``Idempotency-Key``. The admission bucket is the tenant's.
    """
    if auth.party is not None and auth.party != body.caller:
        raise not_a_party(auth.party, idempotency_key)
    tenant = auth.tenant_id
    call_id = idempotency_key
    workflow_id = qualify(tenant, call_id)
    digest = request_hash(body)
    handle = client.get_workflow_handle(workflow_id)
    response.headers["Location"] = f"/v1/calls/{call_id}"

    existing = await _describe(handle)
    if existing is None:
        strategy, site_id = await _check_parties(pool, body, tenant)
        target = f"unit {body.unit_id}" if body.unit_id else ", ".join(p.key() for p in body.callees or [])
        attributes: list[SearchAttributePair[Any]] = [
            SearchAttributePair(CALL_CALLER, body.caller.key()),
            SearchAttributePair(CALL_PHASE, "initiate"),
        ]
        if body.unit_id:
            attributes.append(SearchAttributePair(CALL_UNIT, body.unit_id))
        if body.callees:
            attributes.append(SearchAttributePair(CALL_CALLEES, [p.key() for p in body.callees]))
        admission.admit(tenant)  # only a new workflow start takes a token; 429 when none
        try:
            await client.start_workflow(
                WORKFLOW,
                EscalationInput(
                    call_id=workflow_id,
                    tenant_id=tenant,
                    site_id=site_id,
                    caller=body.caller,
                    unit_id=body.unit_id,
                    callees=body.callees,
                    room_type=body.room_type,
                    policy=body.policy,
                    time_limit_s=body.time_limit_s or settings.time_limit_s,
                    default_ring_timeout_s=settings.ring_timeout_s,
                    join_timeout_s=settings.join_timeout_s,
                    media_required=settings.media_enabled,
                    action_ack_timeout_s=settings.action_ack_timeout_s,
                ),
                id=workflow_id,
                task_queue=settings.task_queue,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                # ONE memo field: every field is a payload the worker keeps per cached call
                memo={
                    MEMO_KEY: {
                        "request_hash": digest,
                        "caller": body.caller.key(),
                        "unit_id": body.unit_id,
                        "room_type": body.room_type.value,
                        "strategy": strategy.value,
                    }
                },
                search_attributes=TypedSearchAttributes(attributes),
                static_summary=f"{body.caller.id} -> {target}"[:200],
            )
            return CallCreated(call_id=call_id, phase=Phase.INITIATE, links=_links(settings, call_id, tenant))
        except WorkflowAlreadyStartedError:
            admission.release(tenant)  # not a new call after all
            existing = await _describe(handle)  # lost a race with the same key
            if existing is None:
                raise
    stored = (await _call_memo(existing)).get("request_hash")
    if stored != digest:
        raise Problem(
            409,
            "idempotency-conflict",
            "Idempotency-Key already used",
            f"call {call_id!r} was placed with another request body",
            ErrCode.IDEMPOTENCY_CONFLICT,
        )
    response.status_code = 200
    view = await store.get_call(pool, workflow_id)
    phase = view.phase if view else (Phase.ENDED if _closed(existing) else Phase.INITIATE)
    return CallCreated(call_id=call_id, phase=phase, links=_links(settings, call_id, tenant))


# ---------------------------------------------------------------- read


@router.get("/{call_id}", response_model=CallView, responses=problem_responses(403, 404))
async def get_call(
    call_id: Identifier, auth: CallsRead, settings: SettingsDep, pool: PoolDep, client: TemporalDep
) -> CallView:
    """The call, its attempts and events (history from PostgreSQL), with its Temporal UI link.
    A call just started (no row yet) is built from its workflow (phase ``initiate``,
    ``ended`` if the workflow closed without a record). The backend sees every call; a
    party only calls it is the caller or a listener of (else 403 ``not-a-party``). 404 unknown
    (another tenant's call too: the id is looked up in the caller's tenant only)."""
    workflow_id = qualify(auth.tenant_id, call_id)
    view = await store.get_call(pool, workflow_id)
    if view is None:
        desc = await _describe(client.get_workflow_handle(workflow_id))
        if desc is None or (memo := await _call_memo(desc)).get("caller") is None:
            raise not_found("call", call_id)
        view = CallView(
            call_id=call_id,
            caller=Party.parse_key(memo["caller"]),
            unit_id=memo.get("unit_id"),
            room_type=memo["room_type"],
            strategy=memo["strategy"],
            phase=Phase.ENDED if _closed(desc) else Phase.INITIATE,
            started_at=desc.start_time,
        )
    party = auth.party
    if party is not None and party != view.caller and all(a.listener != party for a in view.attempts):
        raise not_a_party(party, call_id)
    view.temporal_ui_url = temporal_ui_url(settings, workflow_id)
    return view


@router.get(
    "/{call_id}/timeline.svg",
    response_class=Response,
    responses={
        200: {"content": {"image/svg+xml": {}}, "description": "The call's timeline picture"},
        **problem_responses(403, 404),
    },
)
async def get_call_timeline_svg(
    call_id: Identifier, auth: CallsRead, settings: SettingsDep, pool: PoolDep, client: TemporalDep
) -> Response:
    """The call's history as a picture (``image/svg+xml``, ``api/timeline_svg.py``): one lane
    per room with its phases coloured and its events marked, a time axis in seconds, caller
    and unit in the header. Who may read it and the errors are those of ``GET
    /v1/calls/{call_id}``: the backend, or a party of the call (else 403 ``not-a-party``);
    404 unknown call."""
    view = await get_call(call_id, auth, settings, pool, client)
    svg = render_timeline_svg(view, now=datetime.now(UTC))
    return Response(svg, media_type="image/svg+xml", headers={"Cache-Control": "no-store"})


@router.get("", response_model=CallList)
async def list_calls(
    who: BackendCallsRead,
    pool: PoolDep,
    request: Request,
    unit_id: Identifier | None = None,
    device: Annotated[Identifier | None, Query(description="device sn, as caller or listener")] = None,
    user: Annotated[Identifier | None, Query(description="user id, as caller, listener or answerer")] = None,
    since: Annotated[AwareDatetime | None, Query(description="started_at >= since")] = None,
    until: Annotated[AwareDatetime | None, Query(description="started_at < until")] = None,
    end_reason: Annotated[str | None, Query(max_length=64)] = None,
    phase: Phase | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> CallList:
    """Call history, newest first, filtered (every filter optional, combined with AND).
    Page with ``cursor`` = the previous page's ``next_cursor``; a cursor this API did not
    make is 422 ``validation`` (errCode 1010). Backend only."""
    try:
        items, next_cursor = await store.list_calls(
            pool,
            store.CallFilter(
                unit_id=unit_id,
                device=device,
                user=user,
                since=since,
                until=until,
                end_reason=end_reason,
                phase=phase.value if phase else None,
                limit=limit,
                cursor=cursor,
                tenant_id=who.tenant_id,
            ),
        )
    except ValueError as e:
        raise Problem(422, "validation", "Invalid request", str(e), ErrCode.VALIDATION) from e
    return CallList(items=items, next_cursor=next_cursor)


# ---------------------------------------------------------------- actions

_ACTION_PROBLEMS = problem_responses(403, 404, 409, 503)
"""What :func:`run_update` answers besides the action's result (422 comes with the body)."""

PartyAction = Literal["answer", "reject", "pass", "hang_up"]
_ACTION_UPDATES: dict[str, tuple[Update, type[AnswerInput | RejectInput | PassInput | HangUpInput]]] = {
    "answer": (Update.ANSWER, AnswerInput),
    "reject": (Update.REJECT, RejectInput),
    "pass": (Update.PASS, PassInput),
    "hang_up": (Update.HANG_UP, HangUpInput),
}


async def party_action(
    client: Client, call_id: str, action: PartyAction, party: Party, tenant_id: str = DEFAULT_TENANT
) -> ActionResult:
    """``party`` of tenant ``tenant_id`` answers, rejects or hangs up that tenant's call
    ``call_id`` (workflow update ``action``). Shared by the REST actions and the WebSocket push
    channel. Raises :class:`Problem` (see :func:`run_update`)."""
    update, model = _ACTION_UPDATES[action]
    return await run_update(client, qualify(tenant_id, call_id), update, model(party=party), ActionResult)


async def run_update(client: Client, call_id: str, update: str, arg: Contract, result_type: type[R]) -> R:
    """Send update ``update`` to the call's workflow (``BuildingCallWorkflow``, or a legacy
    ``EscalationWorkflow`` started before the upgrade: same update names) and return its result
    (``result_type``: ``ActionResult`` for the call actions, ``CustomActionResult`` for the
    in-call actions).

    Problems: the workflow's rejections ``AnsweredByAnother`` 409 (1005), ``CallNotActive``
    409 (1006), ``NotAParty`` 403 (1007), ``UnknownAction`` 422 (1014), ``UnknownActionId``
    404 (1008), ``ActionSettled`` 409 (1015), ``FollowUpClosed`` 409 ``follow-up-closed``
    (1006), ``FollowUpNotAllowed`` 403 ``follow-up-not-allowed`` (1016), any other rejection
    409 ``action-rejected``;
    unknown call 404 (1008); finished call 409 ``call-not-active`` (1006); no answer
    from the workflow within :data:`UPDATE_RPC_TIMEOUT` 503 ``unavailable`` (1012).
    ``call_id`` is the workflow id (tenant-qualified); problems name the tenant's own id.
    """
    handle = client.get_workflow_handle(call_id)
    try:
        result = await handle.execute_update(
            update, arg, result_type=result_type, rpc_timeout=UPDATE_RPC_TIMEOUT
        )
        # the tenant's own ids (issue 9): call and room ids without the tenant qualifier
        ids = {
            f: unqualified(v)
            for f in ("call_id", "room_id")
            if isinstance(v := getattr(result, f, None), str)
        }
        return result.model_copy(update=ids)
    except WorkflowUpdateFailedError as e:
        cause = e.cause
        message = cause.message if isinstance(cause, ApplicationError) else str(cause or e)
        kind = cause.type if isinstance(cause, ApplicationError) else None
        if kind in _REJECTIONS:
            status, slug, title = _REJECTIONS[Rejection(kind)]
            raise Problem(status, slug, title, message, REJECTION_ERR_CODES[Rejection(kind)]) from e
        raise Problem(409, "action-rejected", "The call rejected the action", message) from e
    except WorkflowUpdateRPCTimeoutOrCancelledError as e:
        raise Problem(
            503,
            "unavailable",
            "The call did not respond",
            f"no answer from call {unqualified(call_id)!r} within {UPDATE_RPC_TIMEOUT.total_seconds():.0f} s",
            ErrCode.OVERLOADED,
            headers={"Retry-After": "1"},
        ) from e
    except RPCError as e:
        if e.status != RPCStatusCode.NOT_FOUND:
            raise
        # unknown workflow, or one that already completed
        if await _describe(handle) is None:
            raise not_found("call", unqualified(call_id)) from e
        raise call_not_active(unqualified(call_id)) from e


@router.post("/{call_id}/answer", response_model=ActionResult, responses=_ACTION_PROBLEMS)
async def answer(call_id: Identifier, ident: PartyIdentityDep, client: TemporalDep) -> ActionResult:
    """The token's party answers (reference section 4). 409 ``answered-by-another`` (1005)
    when someone else answered first (ring-all), 409 ``call-not-active`` (1006),
    403 ``not-a-party`` (1007), 404 unknown call."""
    return await party_action(client, call_id, "answer", ident.party, ident.tenant_id)


@router.post("/{call_id}/reject", response_model=ActionResult, responses=_ACTION_PROBLEMS)
async def reject(call_id: Identifier, ident: PartyIdentityDep, client: TemporalDep) -> ActionResult:
    """The token's party declines (``rejectVoip``, reference section 4). Errors as ``answer``."""
    return await party_action(client, call_id, "reject", ident.party, ident.tenant_id)


@router.post("/{call_id}/pass", response_model=ActionResult, responses=_ACTION_PROBLEMS)
async def pass_turn(call_id: Identifier, ident: PartyIdentityDep, client: TemporalDep) -> ActionResult:
    """The token's party, being rung, passes: "skip me, move on now" (issue 10 item 3). Unlike
    ``reject`` (``rejectVoip``) it is recorded as ``passVoip`` and leaves the party out of the
    rest of this call (later rounds too); the plan moves on at once (ring-all: once nobody else
    of the stage rings). Errors as ``answer``."""
    return await party_action(client, call_id, "pass", ident.party, ident.tenant_id)


@router.post("/{call_id}/hang-up", response_model=ActionResult, responses=_ACTION_PROBLEMS)
async def hang_up(call_id: Identifier, ident: PartyIdentityDep, client: TemporalDep) -> ActionResult:
    """The token's party hangs up: ``cancelVoip`` (caller before talk), ``rejectVoip``
    (listener before talk) or ``hangUpVoip`` (talk); reference sections 3, 5, 6."""
    return await party_action(client, call_id, "hang_up", ident.party, ident.tenant_id)


@router.post("/{call_id}/cancel", response_model=ActionResult, responses=_ACTION_PROBLEMS)
async def cancel(call_id: Identifier, ident: PartyIdentityDep, client: TemporalDep) -> ActionResult:
    """The caller gives up before talk (``cancelVoip``, reference section 3): the caller's
    ``hang_up``; the workflow decides by phase and party what it means."""
    return await party_action(client, call_id, "hang_up", ident.party, ident.tenant_id)


@router.post(
    "/{call_id}/force-hang-up",
    response_model=ActionResult,
    responses=problem_responses(404, 409, 503),
)
async def force_hang_up(
    call_id: Identifier, body: ForceHangUpInput, who: BackendCallsWrite, client: TemporalDep
) -> ActionResult:
    """The backend ends the call (reference ``forceHangUpVoip``): ``cancelVoip`` before the
    listener joined, ``rejectVoip`` while the listener waits, ``hangUpVoip`` in talk."""
    result = await run_update(
        client, qualify(who.tenant_id, call_id), Update.FORCE_HANG_UP, body, ActionResult
    )
    return result


# ---------------------------------------------------------------- in-call actions (docs/media.md)


@router.post("/{call_id}/actions", response_model=CustomActionResult, responses=_ACTION_PROBLEMS)
async def custom_action(
    call_id: Identifier, body: CustomActionRequest, ident: PartyIdentityDep, client: TemporalDep
) -> CustomActionResult:
    """The listener in talk asks the calling device for ``body.action`` (reference FAQ 1.2,
    ``setCustomBtnText``: "open door"). Answers once the device acknowledged (``result``
    ``done``/``failed``) or after ``action_ack_timeout_s`` (``timeout``). 403 ``not-a-party``
    (1007), 409 ``call-not-active`` (1006, not in talk), 422 ``unknown-action`` (1014),
    404 unknown call."""
    inp = CustomActionInput(party=ident.party, action=body.action)
    return await run_update(
        client, qualify(ident.tenant_id, call_id), Update.CUSTOM_ACTION, inp, CustomActionResult
    )


@router.post(
    "/{call_id}/actions/{action_id}/ack", response_model=CustomActionResult, responses=_ACTION_PROBLEMS
)
async def custom_action_ack(
    call_id: Identifier,
    action_id: Identifier,
    body: CustomActionAckRequest,
    ident: PartyIdentityDep,
    client: TemporalDep,
) -> CustomActionResult:
    """The calling device acknowledges the in-call action ``action_id`` (pushed to it as
    ``custom_action``). 403 ``not-a-party`` (1007, not the caller), 404 unknown action or
    call, 409 ``action-settled`` (1015, already acknowledged or timed out)."""
    inp = CustomActionAck(party=ident.party, action_id=action_id, ok=body.ok, detail=body.detail)
    return await run_update(
        client, qualify(ident.tenant_id, call_id), Update.CUSTOM_ACTION_ACK, inp, CustomActionResult
    )
